//! Style vectors of the voices in the catalog, loaded from `voices/*.bin`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

pub use avb_workflows::speech::{VoiceInfo, nearest_ids, parse_blend};

use super::error::TtsError;

/// Rows in a voice file: one 256-float style vector per possible token count (0..=509).
pub const STYLE_ROWS: usize = 510;
pub const STYLE_DIM: usize = 256;

/// One voice of a blend: its id, its style rows, its share.
type BlendPart<'a> = (&'a str, &'a [f32], f32);

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

    fn unknown(&self, id: &str) -> TtsError {
        TtsError::UnknownVoice {
            voice_id: id.to_string(),
            nearest: nearest_ids(id, self.voices.keys().map(String::as_str), 3),
        }
    }

    /// The voices of a spec (an id, or a blend such as `af_bella(2)+af_sky(1)`) with their
    /// shares, each known.
    fn blend(&self, spec: &str) -> Result<Vec<BlendPart<'_>>, TtsError> {
        if let Some((id, (_, floats))) = self.voices.get_key_value(spec) {
            return Ok(vec![(id.as_str(), floats.as_slice(), 1.0)]);
        }
        let parts = parse_blend(spec).map_err(|message| TtsError::InvalidInput {
            field: "voice_id",
            message,
        })?;
        parts
            .iter()
            .map(|(id, share)| match self.voices.get_key_value(id.as_str()) {
                Some((id, (_, floats))) => Ok((id.as_str(), floats.as_slice(), *share)),
                None => Err(self.unknown(id)),
            })
            .collect()
    }

    /// The catalog entry of a voice spec: for a blend, its first voice's (language and
    /// dialect follow it) under the blend's spec as id.
    pub fn info(&self, spec: &str) -> Result<VoiceInfo, TtsError> {
        let parts = self.blend(spec)?;
        let first = parts.first().map(|(id, _, _)| *id).unwrap_or(spec);
        let mut info = self
            .voices
            .get(first)
            .map(|(info, _)| info.clone())
            .ok_or_else(|| self.unknown(first))?;
        if parts.len() > 1 {
            info.id = spec.trim().to_owned();
            info.name = format!("blend of {}", parts.len());
        }
        Ok(info)
    }

    /// The style row for a chunk of `token_count` tokens: row n−1, as in the reference pipeline
    /// (hexgrad's KPipeline, kokoro-onnx), clamped to the file; a blend's rows mixed by share.
    pub fn style(&self, spec: &str, token_count: usize) -> Result<Cow<'_, [f32]>, TtsError> {
        let row = token_count.saturating_sub(1).min(STYLE_ROWS - 1);
        let rows = row * STYLE_DIM..(row + 1) * STYLE_DIM;
        let parts = self.blend(spec)?;
        if let [(_, floats, _)] = parts.as_slice() {
            return Ok(Cow::Borrowed(&floats[rows]));
        }
        let mut mixed = vec![0.0f32; STYLE_DIM];
        for (_, floats, share) in &parts {
            for (m, v) in mixed.iter_mut().zip(&floats[rows.clone()]) {
                *m += share * v;
            }
        }
        Ok(Cow::Owned(mixed))
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

    #[test]
    fn a_blend_mixes_styles_by_share_and_speaks_its_first_voices_language() {
        let mut voices = BTreeMap::new();
        for (id, value) in [("bf_one", 1.0f32), ("af_two", 4.0)] {
            let info = VoiceInfo::from_id(id).expect("valid id");
            voices.insert(id.to_string(), (info, vec![value; STYLE_ROWS * STYLE_DIM]));
        }
        let bank = VoiceBank { voices };
        let style = bank.style("bf_one(2)+af_two(1)", 5).expect("blend");
        assert!((style[0] - 2.0).abs() < 1e-5, "{}", style[0]);
        let info = bank.info("bf_one(2)+af_two(1)").expect("info");
        assert_eq!(info.language, "en-GB");
        assert_eq!(info.id, "bf_one(2)+af_two(1)");
        assert!(matches!(
            bank.info("bf_one+af_nobody"),
            Err(TtsError::UnknownVoice { voice_id, .. }) if voice_id == "af_nobody"
        ));
        assert!(matches!(
            bank.info("bf_one(0)"),
            Err(TtsError::InvalidInput {
                field: "voice_id",
                ..
            })
        ));
    }
}
