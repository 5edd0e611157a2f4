//! Locations of the model files inside `$AVB_DATA_DIR/assets`, as laid out by
//! `deploy/fetch_assets.py`.

use std::path::{Path, PathBuf};

use super::error::TtsError;

const FETCH_HINT: &str =
    "run `python3 deploy/fetch_assets.py` (or set AVB_DATA_DIR to a directory holding assets/)";

#[derive(Debug, Clone)]
pub struct TtsAssets {
    pub model: PathBuf,
    pub vocab: PathBuf,
    pub voices_dir: PathBuf,
    pub onnxruntime: PathBuf,
}

impl TtsAssets {
    /// Paths under `assets_dir`; nothing is checked yet.
    pub fn in_dir(assets_dir: &Path) -> Self {
        Self {
            model: assets_dir.join("kokoro-v1.0.int8.onnx"),
            vocab: assets_dir.join("vocab.json"),
            voices_dir: assets_dir.join("voices"),
            onnxruntime: assets_dir.join("libonnxruntime.so"),
        }
    }

    /// Every file must exist; the error names the first one that does not and how to get it.
    pub fn check(&self) -> Result<(), TtsError> {
        for (what, path) in [
            ("Kokoro model", &self.model),
            ("vocabulary", &self.vocab),
            ("voices directory", &self.voices_dir),
            ("ONNX Runtime library", &self.onnxruntime),
        ] {
            if !path.exists() {
                return Err(TtsError::Config(format!(
                    "{what} missing at {}: {FETCH_HINT}",
                    path.display()
                )));
            }
        }
        Ok(())
    }
}
