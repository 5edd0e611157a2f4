//! Text → speech: normalise, phonemize, chunk, run Kokoro chunk by chunk, join with pauses.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use avb_workflows::speech::voices::G2p;
use avb_workflows::speech::{DEFAULT_MAX_TEXT_CHARS, GenerateSpeechInput};

use super::assets::TtsAssets;
use super::error::TtsError;
use super::feed::ChunkFeed;
use super::feed::ChunkPlan;
use super::model::{GraphForm, KokoroModel, SAMPLE_RATE, SessionSlot};
use super::phonemes::{Phonemized, Phonemizer};
use super::text::{normalize_for, split_sentences};
use super::tokens::{Boundary, MAX_CHUNK_TOKENS, Piece, Vocab, pack, split_sentence};
use super::voices::{VoiceBank, VoiceInfo};

/// Largest chunk when several sessions share a text. Each session's activations grow with its
/// chunk: 100 tokens (a sentence or two) keep two sessions at about the memory of one 510-token
/// session, at the same speed (BENCHMARKS.md).
pub const PARALLEL_CHUNK_TOKENS: usize = 100;
/// Default session count cap: each session holds its own copy of the model (~300 MB).
pub const MAX_DEFAULT_SESSIONS: usize = 4;

#[derive(Debug, Clone)]
pub struct TtsConfig {
    /// Directory laid out by `deploy/fetch_assets.py` (`$AVB_DATA_DIR/assets`).
    pub assets_dir: PathBuf,
    /// ONNX Runtime intra-op threads of each session.
    pub intra_threads: usize,
    /// Sessions synthesizing different chunks of one text concurrently (each ~300 MB).
    pub sessions: usize,
    /// Threads of a lead session that synthesizes the first chunk alone before the others
    /// start (0 = none: the first chunk runs on session 0 beside the others). With several
    /// one-thread sessions, a lead session of all cores gives both early audio and throughput.
    pub lead_threads: usize,
    /// The lead is the first pool session, built with the lead's threads, instead of a session
    /// of its own: less memory (one copy of the weights and one arena fewer), a little less
    /// throughput.
    pub lead_in_pool: bool,
    pub max_text_chars: usize,
    /// The out-of-lexicon fallback program.
    pub espeak_program: String,
    /// Token budget of the first chunk, kept small so the first audio comes early.
    pub first_chunk_tokens: usize,
    pub max_chunk_tokens: usize,
    /// Run the graph's 1-D integer convolutions as int8 matrix products where that is exact
    /// (`onnx_graph::conv_rewrite`); the audio is bit-identical either way.
    pub rewrite_convs: bool,
}

impl TtsConfig {
    /// How the cores are shared, each value defaulting when `None`: `sessions` (one per core,
    /// at most `MAX_DEFAULT_SESSIONS`) of `threads` each (cores / sessions), and a lead session
    /// of `lead_threads` (every core when there are several sessions, else none). Measured on
    /// two cores (BENCHMARKS.md): two one-thread sessions behind a two-thread lead give both the
    /// highest throughput and the earliest first audio.
    pub fn with_sessions(
        mut self,
        threads: Option<usize>,
        sessions: Option<usize>,
        lead_threads: Option<usize>,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        self.sessions = sessions.unwrap_or(cores.min(MAX_DEFAULT_SESSIONS)).max(1);
        self.intra_threads = threads.unwrap_or(cores / self.sessions).max(1);
        self.lead_threads = lead_threads.unwrap_or(if self.sessions > 1 { cores } else { 0 });
        if self.sessions > 1 {
            // Sessions take whole chunks: smaller chunks keep them busy until the end instead
            // of one finishing a long last chunk alone.
            self.max_chunk_tokens = self.max_chunk_tokens.min(PARALLEL_CHUNK_TOKENS);
        }
        self
    }

    pub fn new(assets_dir: impl Into<PathBuf>) -> Self {
        Self {
            assets_dir: assets_dir.into(),
            intra_threads: std::thread::available_parallelism().map_or(1, usize::from),
            sessions: 1,
            lead_threads: 0,
            lead_in_pool: true,
            max_text_chars: DEFAULT_MAX_TEXT_CHARS,
            espeak_program: "espeak-ng".into(),
            first_chunk_tokens: 16,
            max_chunk_tokens: MAX_CHUNK_TOKENS,
            rewrite_convs: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SpeechPlan {
    pub voice: VoiceInfo,
    /// How the text's language is phonemized.
    pub g2p: G2p,
    pub speed: f32,
    pub chunks: Vec<ChunkPlan>,
    /// Words the lexicon did not know, spoken through the espeak-ng fallback.
    pub fallback_words: Vec<String>,
}

/// Handed to the caller after each chunk, in order: the samples of that chunk (pause included).
pub struct ChunkDone<'a> {
    pub index: usize,
    /// Chunks in the whole job; `None` while the rest of the text is still being planned.
    pub total: Option<usize>,
    pub samples: &'a [f32],
}

#[derive(Debug, Clone)]
pub struct SpeechAudio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    pub chunks: usize,
    pub fallback_words: Vec<String>,
}

impl SpeechAudio {
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

pub struct TtsEngine {
    config: TtsConfig,
    phonemizer: Phonemizer,
    vocab: Vocab,
    voices: VoiceBank,
    model: KokoroModel,
}

impl TtsEngine {
    /// Loads everything once: missing files are a configuration error naming the file.
    pub fn load(config: TtsConfig) -> Result<Self, TtsError> {
        let assets = TtsAssets::in_dir(&config.assets_dir);
        assets.check()?;
        let vocab = Vocab::load(&assets.vocab)?;
        let voices = VoiceBank::load(&assets.voices_dir)?;
        let model = KokoroModel::load(
            &assets.onnxruntime,
            &assets.model,
            config.intra_threads,
            config.sessions,
            config.lead_threads,
            config.lead_in_pool,
            config.rewrite_convs,
        )?;
        let phonemizer = Phonemizer::new(&config.espeak_program)
            .with_japanese_dictionary(config.assets_dir.join(crate::japanese::DICTIONARY_DIR));
        Ok(Self {
            config,
            phonemizer,
            vocab,
            voices,
            model,
        })
    }

    pub fn config(&self) -> &TtsConfig {
        &self.config
    }

    /// Which form of the model graph the sessions run.
    pub fn graph_form(&self) -> GraphForm {
        self.model.graph_form()
    }

    pub fn voices(&self) -> Vec<VoiceInfo> {
        self.voices.catalog()
    }

    /// Bounds and voice checks; the error names the field.
    pub fn validate(&self, req: &GenerateSpeechInput) -> Result<VoiceInfo, TtsError> {
        req.validate(self.config.max_text_chars)
            .map_err(|e| TtsError::InvalidInput {
                field: e.field,
                message: e.message,
            })?;
        self.voices.info(&req.voice_id)
    }

    /// Phonemes of `text` in `g2p`'s language, after normalisation (sentence by sentence).
    pub fn phonemize(&self, text: &str, g2p: G2p) -> Result<(String, Vec<String>), TtsError> {
        let mut all = Vec::new();
        let mut fallback = Vec::new();
        for sentence in split_sentences(&normalize_for(text, g2p)) {
            let p = self.phonemize_sentence(&sentence, g2p)?;
            all.push(p.phonemes);
            fallback.extend(p.fallback_words);
        }
        Ok((all.join(" "), fallback))
    }

    /// One sentence's phonemes. What espeak-ng or the Mandarin or Japanese G2P gives must be
    /// spoken with Kokoro's vocabulary alone: a phoneme outside it is an error naming the
    /// sentence and the character, never silently dropped.
    fn phonemize_sentence(&self, sentence: &str, g2p: G2p) -> Result<Phonemized, TtsError> {
        let p = self.phonemizer.phonemize(sentence, g2p)?;
        let source = match g2p {
            G2p::Espeak(voice) => format!("espeak-ng ({voice}) gave"),
            G2p::Mandarin => "the Mandarin G2P passed through".to_string(),
            G2p::Japanese => "the Japanese G2P passed through".to_string(),
            G2p::English { .. } | G2p::NotSpoken => return Ok(p),
        };
        if let Some(c) = p
            .phonemes
            .chars()
            .find(|c| !c.is_whitespace() && !self.vocab.contains(*c))
        {
            return Err(TtsError::Phonemize {
                word: sentence.to_string(),
                reason: format!(
                    "{source} {c:?} (U+{:04X}), which Kokoro's vocabulary lacks",
                    u32::from(c)
                ),
            });
        }
        Ok(p)
    }

    /// Validates and turns the request into chunks of at most `max_chunk_tokens` tokens.
    pub fn plan(&self, req: &GenerateSpeechInput) -> Result<SpeechPlan, TtsError> {
        let (mut plan, rest) = self.plan_head(req)?;
        let mut chunks = Vec::new();
        let fallback = self.plan_rest(&rest, plan.g2p, |more| {
            chunks.extend(more);
            ControlFlow::Continue(())
        })?;
        plan.chunks.extend(chunks);
        plan.fallback_words.extend(fallback);
        Ok(plan)
    }

    /// Plans only the first sentence that has something to say, cut fine (clauses, then words)
    /// so the first chunk is short and the first audio comes early. Returns the sentences after
    /// it, still to plan.
    fn plan_head(&self, req: &GenerateSpeechInput) -> Result<(SpeechPlan, Vec<String>), TtsError> {
        let voice = self.validate(req)?;
        let g2p = req
            .speech_language()
            .map_err(|e| TtsError::InvalidInput {
                field: e.field,
                message: e.message,
            })?
            .g2p;
        let max = self.max_chunk_tokens();
        let first = self.config.first_chunk_tokens.clamp(1, max);
        let mut sentences = split_sentences(&normalize_for(&req.text, g2p)).into_iter();
        let mut fallback_words = Vec::new();
        let mut chunks = Vec::new();
        for sentence in sentences.by_ref() {
            let p = self.phonemize_sentence(&sentence, g2p)?;
            fallback_words.extend(p.fallback_words);
            let pieces = split_sentence(&self.vocab, &p.phonemes, first);
            chunks = self.chunk_plans(pack(&self.vocab, pieces, first, max));
            if !chunks.is_empty() {
                break;
            }
        }
        if chunks.is_empty() {
            return Err(TtsError::invalid(
                "text",
                "contains nothing that can be spoken",
            ));
        }
        let plan = SpeechPlan {
            voice,
            g2p,
            speed: req.speed,
            chunks,
            fallback_words,
        };
        Ok((plan, sentences.collect()))
    }

    /// Plans `sentences` in groups of about one full chunk, handing each group's chunks to
    /// `publish` as soon as they exist (`Break` stops planning). Returns the fallback words.
    fn plan_rest(
        &self,
        sentences: &[String],
        g2p: G2p,
        mut publish: impl FnMut(Vec<ChunkPlan>) -> ControlFlow<()>,
    ) -> Result<Vec<String>, TtsError> {
        let max = self.max_chunk_tokens();
        let mut fallback_words = Vec::new();
        let mut group = Vec::new();
        let mut group_tokens = 0;
        let last = sentences.len().saturating_sub(1);
        for (i, sentence) in sentences.iter().enumerate() {
            let p = self.phonemize_sentence(sentence, g2p)?;
            fallback_words.extend(p.fallback_words);
            group_tokens += self.vocab.token_count(&p.phonemes);
            group.extend(split_sentence(&self.vocab, &p.phonemes, max));
            if (group_tokens >= max || i == last) && !group.is_empty() {
                let chunks =
                    self.chunk_plans(pack(&self.vocab, std::mem::take(&mut group), max, max));
                group_tokens = 0;
                if publish(chunks).is_break() {
                    break;
                }
            }
        }
        Ok(fallback_words)
    }

    fn max_chunk_tokens(&self) -> usize {
        self.config.max_chunk_tokens.clamp(1, MAX_CHUNK_TOKENS)
    }

    fn chunk_plans(&self, packed: Vec<Piece>) -> Vec<ChunkPlan> {
        packed
            .into_iter()
            .map(|piece| ChunkPlan {
                tokens: self.vocab.encode(&piece.phonemes),
                phonemes: piece.phonemes,
                pause_after_ms: match piece.boundary {
                    Boundary::Sentence => 250,
                    Boundary::Clause => 100,
                    Boundary::Word => 0,
                },
            })
            .filter(|c| !c.tokens.is_empty())
            .collect()
    }

    /// Synthesizes one chunk on the given session.
    pub fn synthesize_chunk(
        &self,
        voice: &VoiceInfo,
        speed: f32,
        chunk: &ChunkPlan,
        session: SessionSlot,
    ) -> Result<Vec<f32>, TtsError> {
        let style = self.voices.style(&voice.id, chunk.tokens.len())?;
        self.model.infer(session, &chunk.tokens, &style, speed)
    }

    /// Runs every chunk of a finished plan in order. After each, `on_chunk` sees its samples and
    /// may stop the job (`ControlFlow::Break`), which ends with `TtsError::Cancelled`.
    pub fn synthesize_plan(
        &self,
        plan: &SpeechPlan,
        on_chunk: impl FnMut(ChunkDone<'_>) -> ControlFlow<()>,
    ) -> Result<SpeechAudio, TtsError> {
        let feed = ChunkFeed::new(plan.chunks.clone(), true);
        let audio = self.synthesize_feed(&plan.voice, plan.speed, &feed, on_chunk)?;
        Ok(SpeechAudio {
            fallback_words: plan.fallback_words.clone(),
            ..audio
        })
    }

    /// Plans the first sentence, then synthesizes it while the rest of the text is planned on
    /// another thread: the first audio does not wait for phonemizing a long text.
    pub fn synthesize(
        &self,
        req: &GenerateSpeechInput,
        on_chunk: impl FnMut(ChunkDone<'_>) -> ControlFlow<()>,
    ) -> Result<SpeechAudio, TtsError> {
        let (head, rest) = self.plan_head(req)?;
        let feed = ChunkFeed::new(head.chunks, rest.is_empty());
        std::thread::scope(|scope| {
            let planner = scope.spawn(|| {
                feed.wait_first_done();
                let planned = self.plan_rest(&rest, head.g2p, |more| {
                    if feed.push(more) {
                        ControlFlow::Continue(())
                    } else {
                        ControlFlow::Break(())
                    }
                });
                feed.close();
                planned
            });
            let audio = self.synthesize_feed(&head.voice, head.speed, &feed, on_chunk);
            feed.close();
            let planned = planner
                .join()
                .map_err(|_| TtsError::Inference("the planning thread panicked".into()));
            // Planning errors come first: they are why the audio stopped short.
            let mut fallback_words = head.fallback_words;
            fallback_words.extend(planned??);
            Ok(SpeechAudio {
                fallback_words,
                ..audio?
            })
        })
    }

    /// Synthesizes chunks as the feed provides them, each session taking the next unclaimed
    /// chunk, and hands them to `on_chunk` strictly in order, each preceded by the pause that
    /// follows the one before it. With a lead session, the first chunk runs on it alone and the
    /// other sessions start once its audio is out.
    fn synthesize_feed(
        &self,
        voice: &VoiceInfo,
        speed: f32,
        feed: &ChunkFeed,
        mut on_chunk: impl FnMut(ChunkDone<'_>) -> ControlFlow<()>,
    ) -> Result<SpeechAudio, TtsError> {
        let stop = AtomicBool::new(false);
        let lead = self.model.has_lead();
        let next = AtomicUsize::new(usize::from(lead));
        let mut samples = Vec::new();
        let workers = self.model.session_count().max(1);
        let mut emitted = 0;
        let result = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<Vec<f32>, TtsError>)>();
            if lead {
                let tx = tx.clone();
                scope.spawn(move || {
                    if let Some(chunk) = feed.wait_for(0) {
                        let audio = self.synthesize_chunk(voice, speed, &chunk, SessionSlot::Lead);
                        let _ = tx.send((0, audio));
                    }
                });
            }
            for session in 0..workers {
                let (tx, stop, next) = (tx.clone(), &stop, &next);
                scope.spawn(move || {
                    if lead {
                        feed.wait_first_done();
                    }
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(chunk) = feed.wait_for(i) else {
                            break;
                        };
                        let audio =
                            self.synthesize_chunk(voice, speed, &chunk, SessionSlot::Pool(session));
                        if tx.send((i, audio)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let stop_all = || {
                stop.store(true, Ordering::Relaxed);
                feed.close();
            };
            let mut pending: BTreeMap<usize, Result<Vec<f32>, TtsError>> = BTreeMap::new();
            let mut pause_ms = 0;
            for index in 0.. {
                let Some(chunk) = feed.wait_for(index) else {
                    break;
                };
                let audio = loop {
                    if let Some(r) = pending.remove(&index) {
                        break r;
                    }
                    match rx.recv() {
                        Ok((i, r)) => {
                            pending.insert(i, r);
                        }
                        Err(_) => {
                            stop_all();
                            return Err(TtsError::Inference(
                                "a synthesis thread stopped unexpectedly".into(),
                            ));
                        }
                    }
                };
                let audio = match audio {
                    Ok(a) => a,
                    Err(e) => {
                        stop_all();
                        return Err(e);
                    }
                };
                let start = samples.len();
                samples.resize(start + (SAMPLE_RATE as usize * pause_ms) / 1000, 0.0);
                samples.extend_from_slice(trim_silence(&audio));
                pause_ms = chunk.pause_after_ms as usize;
                emitted = index + 1;
                if index == 0 {
                    feed.mark_first_done();
                }
                let total = feed.final_total();
                let flow = on_chunk(ChunkDone {
                    index,
                    total,
                    samples: &samples[start..],
                });
                if flow.is_break() && total != Some(emitted) {
                    stop_all();
                    return Err(TtsError::Cancelled {
                        chunks_done: emitted,
                        chunks_total: feed.planned(),
                    });
                }
            }
            Ok(())
        });
        result?;
        Ok(SpeechAudio {
            samples,
            sample_rate: SAMPLE_RATE,
            chunks: emitted,
            fallback_words: Vec::new(),
        })
    }
}

/// Drops leading and trailing frames quieter than 60 dB below the loudest frame (frame 2048,
/// hop 512), as the reference pipeline does, so pauses between chunks are ours, not the model's.
pub fn trim_silence(samples: &[f32]) -> &[f32] {
    const FRAME: usize = 2048;
    const HOP: usize = 512;
    if samples.len() <= FRAME {
        return samples;
    }
    let rms: Vec<f32> = (0..=(samples.len() - FRAME) / HOP)
        .map(|i| {
            let f = &samples[i * HOP..i * HOP + FRAME];
            (f.iter().map(|s| s * s).sum::<f32>() / FRAME as f32).sqrt()
        })
        .collect();
    let max = rms.iter().copied().fold(0.0f32, f32::max);
    if max <= 0.0 {
        return samples;
    }
    let threshold = max * 1e-3; // −60 dB
    let first = rms.iter().position(|r| *r > threshold).unwrap_or(0);
    let last = rms
        .iter()
        .rposition(|r| *r > threshold)
        .unwrap_or(rms.len() - 1);
    let start = first * HOP;
    let end = (last * HOP + FRAME).min(samples.len());
    &samples[start..end]
}
