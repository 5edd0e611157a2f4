//! Speech audio in the formats clients ask for. The engine makes mono 16-bit samples; this crate
//! turns them into WAV, raw PCM, FLAC (flacenc, pure Rust), MP3 (LAME, statically linked from
//! the `mp3lame-sys` crate's source) or Opus in an Ogg container (libopus through `opus`, the
//! Debian `libopus` library).
//!
//! Every format has an [`Encoder`] that takes samples as they are made and returns the bytes
//! ready so far, so a response can be streamed while synthesis runs: PCM, MP3 and Opus give
//! bytes at once, WAV gives its header first (sizes left open, as streamed WAV players expect),
//! FLAC only at the end (its stream header carries totals). [`encode`] does the whole audio in
//! one call, with exact WAV sizes.
//!
//! # Layout
//! - `format`: [`AudioFormat`], its names, MIME types and file extensions.
//! - `encoders`: one encoder per format behind [`Encoder`].
//! - `wav`: reading the WAV files the speech worker stores.

mod encoders;
mod format;
mod wav;

pub use encoders::{Encoder, encode, encoder};
pub use format::{AudioFormat, UnknownFormat};
pub use wav::read_wav;

/// Why audio could not be encoded or read.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{format} encoder: {message}")]
    Encoder {
        format: &'static str,
        message: String,
    },
    #[error("not a 16-bit mono WAV file: {0}")]
    NotWav(String),
}

impl AudioError {
    fn encoder(format: AudioFormat, message: impl std::fmt::Display) -> Self {
        Self::Encoder {
            format: format.name(),
            message: message.to_string(),
        }
    }
}
