//! The Kokoro ONNX graph on ONNX Runtime, loaded dynamically from an explicit library path.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::value::Tensor;

use super::error::TtsError;
use super::onnx_graph::{RewriteReport, int8_matmul_is_exact, rewrite_graph};
use super::voices::STYLE_DIM;

pub const SAMPLE_RATE: u32 = 24_000;

/// ONNX Runtime can be loaded once per process; remember which library and whether it worked.
static ENVIRONMENT: OnceLock<Result<(std::path::PathBuf, ort::environment::Environment), String>> =
    OnceLock::new();

fn environment(lib: &Path) -> Result<&'static ort::environment::Environment, TtsError> {
    let entry = ENVIRONMENT.get_or_init(|| {
        let builder = ort::init_from(lib).map_err(|e| {
            format!(
                "cannot load ONNX Runtime from {}: {e}; run deploy/fetch_assets.py",
                lib.display()
            )
        })?;
        let env = builder
            .with_name("avb-tts")
            .build()
            .map_err(|e| format!("ONNX Runtime init failed: {e}"))?;
        Ok((lib.to_path_buf(), env))
    });
    match entry {
        Ok((loaded, env)) if loaded == lib => Ok(env),
        Ok((loaded, _)) => Err(TtsError::Config(format!(
            "ONNX Runtime already loaded from {} in this process; cannot switch to {}",
            loaded.display(),
            lib.display()
        ))),
        Err(e) => Err(TtsError::Config(e.clone())),
    }
}

/// Inference sessions. `Session::run` needs `&mut`, so each session is behind a mutex;
/// parallelism comes from ONNX Runtime's intra-op threads within a session, and from several
/// sessions working on different chunks of one text at once.
pub struct KokoroModel {
    sessions: Vec<Mutex<Session>>,
    /// A session with more threads for the first chunk, which runs alone: one-thread sessions
    /// in parallel give the best throughput, but the first audio wants every core.
    lead: Option<Mutex<Session>>,
    /// The lead is the first pool session (built with the lead's threads), not a session of
    /// its own: one copy of the weights and one arena fewer, for a little throughput.
    lead_in_pool: bool,
    graph: GraphForm,
}

/// Which form of the graph the sessions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphForm {
    /// The model file as it is.
    Original,
    /// 1-D integer convolutions run as int8 matrix products and constant squares as products
    /// (`onnx_graph::conv_rewrite`).
    Rewritten(RewriteReport),
}

/// Which session runs a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSlot {
    Lead,
    Pool(usize),
}

impl KokoroModel {
    /// `sessions` independent sessions of `intra_threads` threads each (both at least 1), and a
    /// lead session of `lead_threads` threads unless that is 0 — its own, or, with
    /// `lead_in_pool`, the first pool session built with the lead's threads. With
    /// `rewrite_convs`, the sessions run the rewritten graph where that is exact; if it cannot
    /// be made or loaded, they run the file as it is (slower, same audio) and a warning says
    /// why.
    pub fn load(
        lib: &Path,
        model: &Path,
        intra_threads: usize,
        sessions: usize,
        lead_threads: usize,
        lead_in_pool: bool,
        rewrite_convs: bool,
    ) -> Result<Self, TtsError> {
        let name = model.display().to_string();
        // (threads, spinning) of each session; the lead session, if any, last.
        let mut wanted = vec![(intra_threads, true); sessions.max(1)];
        let lead_in_pool = lead_in_pool && lead_threads > 0;
        if lead_in_pool {
            wanted[0] = (lead_threads, false);
        } else if lead_threads > 0 {
            wanted.push((lead_threads, false));
        }
        let assemble = |mut loaded: Vec<Mutex<Session>>, graph| {
            let lead = (lead_threads > 0 && !lead_in_pool).then(|| loaded.remove(loaded.len() - 1));
            Self {
                sessions: loaded,
                lead,
                lead_in_pool,
                graph,
            }
        };
        if rewrite_convs && let Some((bytes, report)) = rewritten_graph(model)? {
            match load_sessions(lib, &name, GraphSource::Memory(&bytes), &wanted) {
                Ok(loaded) => return Ok(assemble(loaded, GraphForm::Rewritten(report))),
                Err(e) => tracing::warn!(
                    "the rewritten graph of {name} does not load ({e}); running the model as it is"
                ),
            }
        }
        let loaded = load_sessions(lib, &name, GraphSource::File(model), &wanted)?;
        Ok(assemble(loaded, GraphForm::Original))
    }

    pub fn graph_form(&self) -> GraphForm {
        self.graph
    }

    pub fn has_lead(&self) -> bool {
        self.lead.is_some() || self.lead_in_pool
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Runs the graph on one chunk: `tokens` without padding (≤ 510), the voice's style row for
    /// that token count, and the speed factor. Returns 24 kHz mono samples.
    pub fn infer(
        &self,
        slot: SessionSlot,
        tokens: &[i64],
        style: &[f32],
        speed: f32,
    ) -> Result<Vec<f32>, TtsError> {
        let session = match (slot, &self.lead) {
            (SessionSlot::Lead, Some(lead)) => lead,
            (SessionSlot::Lead, None) => &self.sessions[0],
            (SessionSlot::Pool(i), _) => &self.sessions[i % self.sessions.len()],
        };
        let mut session = session.lock().map_err(|_| {
            TtsError::Inference("session mutex poisoned by an earlier panic".into())
        })?;
        run_graph(&mut session, tokens, style, speed)
    }
}

/// The model with its convolutions rewritten (`onnx_graph::conv_rewrite`), when that is exact
/// on this CPU and changes anything; `None`: run the file as it is.
fn rewritten_graph(model: &Path) -> Result<Option<(Vec<u8>, RewriteReport)>, TtsError> {
    if !int8_matmul_is_exact() {
        tracing::info!(
            "CPU without AVX-512 VNNI: running {} as it is (its int8 convolution rewrite would \
             not be bit-exact here)",
            model.display()
        );
        return Ok(None);
    }
    let bytes = std::fs::read(model)
        .map_err(|e| TtsError::Config(format!("cannot read model {}: {e}", model.display())))?;
    match rewrite_graph(&bytes) {
        Ok((rewritten, report)) if report.changed() => {
            tracing::info!(
                convs_rewritten = report.convs_rewritten,
                convs_kept = report.convs_kept,
                squares_as_products = report.squares_as_products,
                "model convolutions run as int8 matrix products, squares as products"
            );
            Ok(Some((rewritten, report)))
        }
        Ok(_) => Ok(None),
        Err(e) => {
            tracing::warn!(
                "cannot rewrite the convolutions of {}: {e}; running it as it is",
                model.display()
            );
            Ok(None)
        }
    }
}

/// Builds and warms up one session per `(threads, spinning)`, side by side: building a session
/// is mostly single-threaded graph work.
fn load_sessions(
    lib: &Path,
    name: &str,
    source: GraphSource<'_>,
    wanted: &[(usize, bool)],
) -> Result<Vec<Mutex<Session>>, TtsError> {
    std::thread::scope(|scope| {
        let builders: Vec<_> = wanted
            .iter()
            .map(|&(threads, spinning)| {
                scope.spawn(move || {
                    let mut session = session(lib, name, source, threads, spinning)?;
                    warm_up(&mut session)?;
                    Ok(Mutex::new(session))
                })
            })
            .collect();
        builders
            .into_iter()
            .map(|b| {
                b.join()
                    .unwrap_or_else(|_| Err(TtsError::Config(format!("loading {name} panicked"))))
            })
            .collect()
    })
}

/// Runs the graph on one chunk: `tokens` without padding (≤ 510), the voice's style row for
/// that token count, and the speed factor. Returns 24 kHz mono samples.
fn run_graph(
    session: &mut Session,
    tokens: &[i64],
    style: &[f32],
    speed: f32,
) -> Result<Vec<f32>, TtsError> {
    let inference = |e: ort::Error| TtsError::Inference(e.to_string());
    let mut padded = Vec::with_capacity(tokens.len() + 2);
    padded.push(0);
    padded.extend_from_slice(tokens);
    padded.push(0);
    let n = padded.len();
    let tokens = Tensor::from_array(([1usize, n], padded)).map_err(inference)?;
    let style = Tensor::from_array(([1usize, STYLE_DIM], style.to_vec())).map_err(inference)?;
    let speed = Tensor::from_array(([1usize], vec![speed])).map_err(inference)?;
    // The arena gives back what this run no longer holds once it ends: without it each
    // session keeps its largest chunk's activations for good (measured in BENCHMARKS.md).
    let mut options = ort::session::RunOptions::new().map_err(inference)?;
    options
        .set("memory.enable_memory_arena_shrinkage", "cpu:0")
        .map_err(inference)?;
    let outputs = session
        .run_with_options(
            ort::inputs!["tokens" => tokens, "style" => style, "speed" => speed],
            &options,
        )
        .map_err(inference)?;
    let (_, audio) = outputs["audio"]
        .try_extract_tensor::<f32>()
        .map_err(inference)?;
    Ok(audio.to_vec())
}

/// One short inference per session at load: ONNX Runtime sizes its arenas and picks kernels on
/// the first run, which would otherwise land on the first chunk of the first job and delay its
/// audio.
fn warm_up(session: &mut Session) -> Result<(), TtsError> {
    // "həlˈO" (hello) in Kokoro's vocabulary; any valid ids would do.
    let tokens = [50, 83, 54, 156, 31];
    let style = vec![0.0_f32; STYLE_DIM];
    run_graph(session, &tokens, &style, 1.0).map(drop)
}

/// Where a session's graph comes from.
#[derive(Debug, Clone, Copy)]
pub enum GraphSource<'a> {
    /// The model file (external data files beside it are found).
    File(&'a Path),
    /// Bytes of a whole model, e.g. a rewritten graph.
    Memory(&'a [u8]),
}

/// A session over `source` (`name` says which model, for errors), on the ONNX Runtime library
/// `lib` (loaded once per process). Also used by tests running small graphs of their own.
pub fn session(
    lib: &Path,
    name: &str,
    source: GraphSource<'_>,
    intra_threads: usize,
    spinning: bool,
) -> Result<Session, TtsError> {
    let env = environment(lib)?;
    let config = |e: ort::Error| TtsError::Config(format!("cannot load model {name}: {e}"));
    let mut builder = Session::builder(env)
        .map_err(config)?
        .with_intra_threads(intra_threads.max(1))
        .map_err(|e| config(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| config(e.into()))?
        // The lead session's idle pool threads must not spin: they would steal the cores
        // from the one-thread sessions working after it.
        .with_intra_op_spinning(spinning)
        .map_err(|e| config(e.into()))?;
    match source {
        GraphSource::File(path) => builder.commit_from_file(path),
        GraphSource::Memory(bytes) => builder.commit_from_memory(bytes),
    }
    .map_err(config)
}
