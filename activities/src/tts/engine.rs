//! Text → speech: normalise, phonemize, chunk, run Kokoro chunk by chunk, join with pauses.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use avb_workflows::speech::{DEFAULT_MAX_TEXT_CHARS, GenerateSpeechInput};

use super::assets::TtsAssets;
use super::error::TtsError;
use super::model::{KokoroModel, SAMPLE_RATE};
use super::phonemes::Phonemizer;
use super::text::{normalize, split_sentences};
use super::tokens::{Boundary, MAX_CHUNK_TOKENS, Vocab, pack, split_sentence};
use super::voices::{VoiceBank, VoiceInfo};

#[derive(Debug, Clone)]
pub struct TtsConfig {
    /// Directory laid out by `deploy/fetch_assets.py` (`$AVB_DATA_DIR/assets`).
    pub assets_dir: PathBuf,
    /// ONNX Runtime intra-op threads of each session.
    pub intra_threads: usize,
    /// Sessions synthesizing different chunks of one text concurrently (each ~300 MB).
    pub sessions: usize,
    pub max_text_chars: usize,
    /// The out-of-lexicon fallback program.
    pub espeak_program: String,
    /// Token budget of the first chunk, kept small so the first audio comes early.
    pub first_chunk_tokens: usize,
    pub max_chunk_tokens: usize,
}

impl TtsConfig {
    pub fn new(assets_dir: impl Into<PathBuf>) -> Self {
        Self {
            assets_dir: assets_dir.into(),
            intra_threads: std::thread::available_parallelism().map_or(1, usize::from),
            sessions: 1,
            max_text_chars: DEFAULT_MAX_TEXT_CHARS,
            espeak_program: "espeak-ng".into(),
            first_chunk_tokens: 30,
            max_chunk_tokens: MAX_CHUNK_TOKENS,
        }
    }
}

/// One unit of inference.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkPlan {
    pub phonemes: String,
    pub tokens: Vec<i64>,
    /// Silence inserted after this chunk (none after the last).
    pub pause_after_ms: u32,
}

#[derive(Debug, Clone)]
pub struct SpeechPlan {
    pub voice: VoiceInfo,
    pub speed: f32,
    pub chunks: Vec<ChunkPlan>,
    /// Words the lexicon did not know, spoken through the espeak-ng fallback.
    pub fallback_words: Vec<String>,
}

/// Handed to the caller after each chunk, in order: the samples of that chunk (pause included).
pub struct ChunkDone<'a> {
    pub index: usize,
    pub total: usize,
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
        )?;
        let phonemizer = Phonemizer::new(&config.espeak_program);
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

    pub fn voices(&self) -> Vec<VoiceInfo> {
        self.voices.catalog()
    }

    /// Bounds and voice checks; the error names the field.
    pub fn validate(&self, req: &GenerateSpeechInput) -> Result<&VoiceInfo, TtsError> {
        req.validate(self.config.max_text_chars)
            .map_err(|e| TtsError::InvalidInput {
                field: e.field,
                message: e.message,
            })?;
        self.voices.info(&req.voice_id)
    }

    /// Phonemes of `text` in the given dialect, after normalisation (sentence by sentence).
    pub fn phonemize(&self, text: &str, british: bool) -> Result<(String, Vec<String>), TtsError> {
        let mut all = Vec::new();
        let mut fallback = Vec::new();
        for sentence in split_sentences(&normalize(text)) {
            let p = self.phonemizer.phonemize(&sentence, british)?;
            all.push(p.phonemes);
            fallback.extend(p.fallback_words);
        }
        Ok((all.join(" "), fallback))
    }

    /// Validates and turns the request into chunks of at most `max_chunk_tokens` tokens.
    pub fn plan(&self, req: &GenerateSpeechInput) -> Result<SpeechPlan, TtsError> {
        let voice = self.validate(req)?.clone();
        let max = self.config.max_chunk_tokens.clamp(1, MAX_CHUNK_TOKENS);
        let mut pieces = Vec::new();
        let mut fallback_words = Vec::new();
        for sentence in split_sentences(&normalize(&req.text)) {
            let p = self.phonemizer.phonemize(&sentence, voice.is_british())?;
            fallback_words.extend(p.fallback_words);
            if !p.phonemes.is_empty() {
                // The first sentence is cut finer (clauses, then words) so the first chunk is
                // short and the first audio comes early; the rest packs up to `max` again.
                let limit = if pieces.is_empty() {
                    self.config.first_chunk_tokens.clamp(1, max)
                } else {
                    max
                };
                pieces.extend(split_sentence(&self.vocab, &p.phonemes, limit));
            }
        }
        let packed = pack(
            &self.vocab,
            pieces,
            self.config.first_chunk_tokens.min(max),
            max,
        );
        let n = packed.len();
        let chunks: Vec<ChunkPlan> = packed
            .into_iter()
            .enumerate()
            .map(|(i, piece)| ChunkPlan {
                tokens: self.vocab.encode(&piece.phonemes),
                phonemes: piece.phonemes,
                pause_after_ms: if i + 1 == n {
                    0
                } else {
                    match piece.boundary {
                        Boundary::Sentence => 250,
                        Boundary::Clause => 100,
                        Boundary::Word => 0,
                    }
                },
            })
            .filter(|c| !c.tokens.is_empty())
            .collect();
        if chunks.is_empty() {
            return Err(TtsError::invalid(
                "text",
                "contains nothing that can be spoken",
            ));
        }
        Ok(SpeechPlan {
            voice,
            speed: req.speed,
            chunks,
            fallback_words,
        })
    }

    /// Synthesizes one chunk of a plan on the given session.
    pub fn synthesize_chunk(
        &self,
        plan: &SpeechPlan,
        chunk: &ChunkPlan,
        session: usize,
    ) -> Result<Vec<f32>, TtsError> {
        let style = self.voices.style(&plan.voice.id, chunk.tokens.len())?;
        self.model.infer(session, &chunk.tokens, style, plan.speed)
    }

    /// Runs every chunk in order. After each, `on_chunk` sees its samples and may stop the job
    /// (`ControlFlow::Break`), which ends with `TtsError::Cancelled`.
    pub fn synthesize_plan(
        &self,
        plan: &SpeechPlan,
        mut on_chunk: impl FnMut(ChunkDone<'_>) -> ControlFlow<()>,
    ) -> Result<SpeechAudio, TtsError> {
        let total = plan.chunks.len();
        let stop = AtomicBool::new(false);
        let next = AtomicUsize::new(0);
        let mut samples = Vec::new();
        let workers = self.model.session_count().min(total).max(1);
        // Each session takes the next unclaimed chunk; results are emitted strictly in order.
        let result = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<Vec<f32>, TtsError>)>();
            for session in 0..workers {
                let (tx, stop, next) = (tx.clone(), &stop, &next);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(chunk) = plan.chunks.get(i) else {
                            break;
                        };
                        if tx
                            .send((i, self.synthesize_chunk(plan, chunk, session)))
                            .is_err()
                        {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut pending: BTreeMap<usize, Result<Vec<f32>, TtsError>> = BTreeMap::new();
            for index in 0..total {
                let audio = loop {
                    if let Some(r) = pending.remove(&index) {
                        break r;
                    }
                    match rx.recv() {
                        Ok((i, r)) => {
                            pending.insert(i, r);
                        }
                        Err(_) => {
                            return Err(TtsError::Inference(
                                "a synthesis thread stopped unexpectedly".into(),
                            ));
                        }
                    }
                };
                let audio = match audio {
                    Ok(a) => a,
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                };
                let chunk = &plan.chunks[index];
                let start = samples.len();
                samples.extend_from_slice(trim_silence(&audio));
                let pause = (SAMPLE_RATE as usize * chunk.pause_after_ms as usize) / 1000;
                samples.resize(samples.len() + pause, 0.0);
                if on_chunk(ChunkDone {
                    index,
                    total,
                    samples: &samples[start..],
                })
                .is_break()
                    && index + 1 < total
                {
                    stop.store(true, Ordering::Relaxed);
                    return Err(TtsError::Cancelled {
                        chunks_done: index + 1,
                        chunks_total: total,
                    });
                }
            }
            Ok(())
        });
        result?;
        Ok(SpeechAudio {
            samples,
            sample_rate: SAMPLE_RATE,
            chunks: total,
            fallback_words: plan.fallback_words.clone(),
        })
    }

    pub fn synthesize(
        &self,
        req: &GenerateSpeechInput,
        on_chunk: impl FnMut(ChunkDone<'_>) -> ControlFlow<()>,
    ) -> Result<SpeechAudio, TtsError> {
        let plan = self.plan(req)?;
        self.synthesize_plan(&plan, on_chunk)
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
