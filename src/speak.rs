//! `avb speak TEXT --voice ID [--speed S] --out FILE.wav`: the engine from the command line, for
//! operators and benchmarks.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use avb_tts::model::GraphForm;
use avb_tts::wav::encode_wav;
use avb_tts::{TtsConfig, TtsEngine};
use avb_workflows::speech::{DEFAULT_VOICE, GenerateSpeechInput};

#[derive(clap::Args)]
pub struct SpeakArgs {
    /// Text to speak; `-` reads standard input.
    text: String,
    #[arg(long, default_value = DEFAULT_VOICE)]
    voice: String,
    #[arg(long, default_value_t = 1.0)]
    speed: f32,
    #[arg(long)]
    out: PathBuf,
    /// ONNX Runtime intra-op threads per session (default: cores / sessions).
    #[arg(long, env = "AVB_TTS_THREADS")]
    threads: Option<usize>,
    /// Sessions synthesizing chunks concurrently (default: one per core, at most 4).
    #[arg(long, env = "AVB_TTS_SESSIONS")]
    sessions: Option<usize>,
    /// Threads of a lead session that synthesizes the first chunk alone (0 = none; default:
    /// all cores when --sessions > 1).
    #[arg(long, env = "AVB_TTS_LEAD_THREADS")]
    lead_threads: Option<usize>,
    /// Language of the text (a tag from `list_voices`, e.g. `es`, `fr-FR`); default: the
    /// voice's.
    #[arg(long)]
    language: Option<String>,
    /// Give the lead its own session (more memory, a little more throughput) instead of
    /// running it on the first pool session.
    #[arg(long, env = "AVB_TTS_SEPARATE_LEAD")]
    separate_lead: bool,
    /// Largest chunk in tokens (≤ 510; default 510 for one session, smaller for several so
    /// the sessions finish together).
    #[arg(long)]
    chunk_tokens: Option<usize>,
    /// Run the model file's graph as it is, without running its integer convolutions as int8
    /// matrix products (same audio, slower; for comparisons).
    #[arg(long)]
    original_graph: bool,
    /// Data directory holding assets/ (see deploy/fetch_assets.py).
    #[arg(long, env = "AVB_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Print timings as one JSON line on stderr (for benchmarks).
    #[arg(long)]
    json: bool,
}

pub fn run(args: SpeakArgs) -> anyhow::Result<()> {
    let text = if args.text == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading text from stdin")?
    } else {
        args.text
    };
    let t0 = Instant::now();
    let mut config = TtsConfig::new(args.data_dir.join("assets")).with_sessions(
        args.threads,
        args.sessions,
        args.lead_threads,
    );
    if let Some(n) = args.chunk_tokens {
        config.max_chunk_tokens = n;
    }
    config.rewrite_convs = !args.original_graph;
    config.lead_in_pool = !args.separate_lead;
    let engine = TtsEngine::load(config)?;
    let loaded = t0.elapsed();
    let req = GenerateSpeechInput {
        text,
        voice_id: args.voice,
        speed: args.speed,
        format: None,
        language: args.language.clone(),
    };
    // Phonemization and chunking alone, timed for the benchmarks (synthesis plans again).
    let planned = Instant::now();
    let plan = engine.plan(&req)?;
    let plan_secs = planned.elapsed().as_secs_f64();
    drop(plan);
    let t1 = Instant::now();
    let mut first_audio = None;
    let audio = engine.synthesize(&req, |_| {
        first_audio.get_or_insert_with(|| t1.elapsed());
        ControlFlow::Continue(())
    })?;
    let synth = t1.elapsed();
    let wav = encode_wav(&audio.samples, audio.sample_rate)?;
    std::fs::write(&args.out, wav).with_context(|| format!("writing {}", args.out.display()))?;
    let secs = audio.duration_secs();
    let graph = match engine.graph_form() {
        GraphForm::Original => "original".to_string(),
        GraphForm::Rewritten(r) => format!(
            "{} convs as int8 matmul, {} squares as products",
            r.convs_rewritten, r.squares_as_products
        ),
    };
    if args.json {
        eprintln!(
            "{}",
            serde_json::json!({
                "audio_secs": secs,
                "load_secs": loaded.as_secs_f64(),
                "synth_secs": synth.as_secs_f64(),
                "first_audio_secs": first_audio.map(|d| d.as_secs_f64()),
                "chunks": audio.chunks,
                "chars": req.text.chars().count(),
                "plan_secs": plan_secs,
                "rtf": secs / synth.as_secs_f64(),
                "graph": graph,
            })
        );
    } else {
        eprintln!(
            "wrote {} ({secs:.2}s of audio, {} chunks) in {:.2}s (model load {:.2}s)",
            args.out.display(),
            audio.chunks,
            synth.as_secs_f64(),
            loaded.as_secs_f64()
        );
    }
    Ok(())
}
