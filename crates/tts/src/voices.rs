//! Style vectors of the voices in the catalog, loaded from `voices/*.bin`.

use std::collections::BTreeMap;
use std::path::Path;

pub use avb_workflows::speech::{VoiceInfo, nearest_ids};

use super::error::TtsError;

/// Rows in a voice file: one 256-float style vector per possible token count (0..=509).
pub const STYLE_ROWS: usize = 510;
pub const STYLE_DIM: usize = 256;

/// Style vectors of every voice, loaded once per process (54 × 510 × 256 floats ≈ 28 MB).
pub struct VoiceBank {
    voices: BTreeMap<String, (VoiceInfo, Vec<f32>)>,
}

impl VoiceBank {
    pub fn load(dir: &Path) -> Result<Self, TtsError> {
        let mut voices = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| {
            TtsError::Config(format!(
                "cannot read voices directory {}: {e}",
                dir.display()
            ))
        })?;
        for entry in entries {
            let path = entry?.path();
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if path.extension().and_then(|e| e.to_str()) != Some("bin") {
                continue;
            }
            let Some(info) = VoiceInfo::from_id(id) else {
                continue;
            };
            let bytes = std::fs::read(&path)?;
            if bytes.len() != STYLE_ROWS * STYLE_DIM * 4 {
                return Err(TtsError::Config(format!(
                    "voice file {} has {} bytes, expected {} (float32 [510,1,256]); re-run deploy/fetch_assets.py",
                    path.display(),
                    bytes.len(),
                    STYLE_ROWS * STYLE_DIM * 4
                )));
            }
            let floats = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            voices.insert(id.to_string(), (info, floats));
        }
        if voices.is_empty() {
            return Err(TtsError::Config(format!(
                "no voices in {}; run deploy/fetch_assets.py",
                dir.display()
            )));
        }
        Ok(Self { voices })
    }

    pub fn catalog(&self) -> Vec<VoiceInfo> {
        self.voices.values().map(|(info, _)| info.clone()).collect()
    }

    pub fn info(&self, id: &str) -> Result<&VoiceInfo, TtsError> {
        self.voices
            .get(id)
            .map(|(info, _)| info)
            .ok_or_else(|| TtsError::UnknownVoice {
                voice_id: id.to_string(),
                nearest: nearest_ids(id, self.voices.keys().map(String::as_str), 3),
            })
    }

    /// The style row for a chunk of `token_count` tokens: row n−1, as in the reference pipeline
    /// (hexgrad's KPipeline, kokoro-onnx), clamped to the file.
    pub fn style(&self, id: &str, token_count: usize) -> Result<&[f32], TtsError> {
        let (_, floats) = self.voices.get(id).ok_or_else(|| TtsError::UnknownVoice {
            voice_id: id.to_string(),
            nearest: nearest_ids(id, self.voices.keys().map(String::as_str), 3),
        })?;
        let row = token_count.saturating_sub(1).min(STYLE_ROWS - 1);
        Ok(&floats[row * STYLE_DIM..(row + 1) * STYLE_DIM])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_rows_clamp_to_the_last_row() {
        let mut voices = BTreeMap::new();
        let info = VoiceInfo::from_id("af_test").expect("valid id");
        let floats: Vec<f32> = (0..STYLE_ROWS * STYLE_DIM)
            .map(|i| (i / STYLE_DIM) as f32)
            .collect();
        voices.insert("af_test".to_string(), (info, floats));
        let bank = VoiceBank { voices };
        assert_eq!(bank.style("af_test", 3).expect("row")[0], 2.0);
        assert_eq!(bank.style("af_test", 0).expect("row")[0], 0.0);
        assert_eq!(bank.style("af_test", 9999).expect("row")[0], 509.0);
        assert!(matches!(
            bank.style("af_tst", 3),
            Err(TtsError::UnknownVoice { .. })
        ));
    }
}
