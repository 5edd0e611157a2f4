//! Shared setup for tests that run the real Kokoro model.

use std::path::PathBuf;

use avb_tts::{TtsConfig, TtsEngine};

/// `$AVB_DATA_DIR/assets`, else the workspace's `data/assets` (where the fetch script puts them).
pub fn assets_dir() -> PathBuf {
    let data = std::env::var_os("AVB_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    let dir = data.join("assets");
    assert!(
        dir.join("kokoro-v1.0.int8.onnx").exists(),
        "Kokoro assets missing in {}: run `python3 deploy/fetch_assets.py` first",
        dir.display()
    );
    dir
}

pub fn engine() -> TtsEngine {
    let mut config = TtsConfig::new(assets_dir());
    // One thread each: nextest runs tests in parallel on 2 cores.
    config.intra_threads = 1;
    TtsEngine::load(config).expect("engine loads")
}
