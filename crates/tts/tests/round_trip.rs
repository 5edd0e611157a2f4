//! Round trip through a speech recognizer: text synthesized by the engine in English, Spanish,
//! French, Italian, Mandarin and Japanese, transcribed by Whisper base (multilingual; from PyPI,
//! see tests/python/asr_round_trip.py), must give back most of the words (Mandarin and
//! Japanese: characters, with a lower bar — Whisper often writes traditional characters for
//! simplified ones, and kana for kanji or the other way round).
//! A language read with the wrong G2P (English letter names, another language's sounds) fails.

mod common;

use std::ops::ControlFlow;

use avb_workflows::speech::GenerateSpeechInput;

/// (language, voice, text, least share of the words heard back).
const SENTENCES: &[(&str, &str, &str, f64)] = &[
    (
        "en",
        "af_heart",
        "The weather is lovely today, so we walked along the river to the old bridge.",
        0.8,
    ),
    (
        "es",
        "ef_dora",
        "Hoy hace muy buen tiempo, así que caminamos por el río hasta el puente viejo.",
        0.8,
    ),
    (
        "fr",
        "ff_siwis",
        "Il fait très beau aujourd'hui, alors nous avons marché jusqu'au vieux pont.",
        0.8,
    ),
    (
        "it",
        "if_sara",
        "Oggi il tempo è bellissimo, quindi abbiamo camminato fino al vecchio ponte.",
        0.8,
    ),
    (
        "zh",
        "zf_xiaobei",
        "今天天气很好，我们沿着河边走到那座老桥。",
        0.5,
    ),
    (
        "ja",
        "jf_alpha",
        "今日はとてもいい天気なので、川沿いを歩いて古い橋まで行きました。",
        0.5,
    ),
];

/// Lower-case words without punctuation; for Mandarin and Japanese, their characters.
fn units(language: &str, text: &str) -> Vec<String> {
    if matches!(language, "zh" | "ja") {
        return text
            .chars()
            .filter(|c| c.is_alphanumeric())
            .map(String::from)
            .collect();
    }
    text.split(|c: char| c.is_whitespace() || c == '\'' || c == '’')
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The share of `said`'s words (or characters) that `heard` contains.
fn overlap(language: &str, said: &str, heard: &str) -> f64 {
    let said = units(language, said);
    let mut heard = units(language, heard);
    let found = said
        .iter()
        .filter(|u| match heard.iter().position(|h| h == *u) {
            Some(i) => {
                heard.swap_remove(i);
                true
            }
            None => false,
        })
        .count();
    found as f64 / said.len().max(1) as f64
}

#[test]
fn synthesized_speech_is_heard_back_in_its_language() {
    use std::io::Write as _;
    let engine = common::engine();
    let dir = tempfile::tempdir().expect("tmp");
    let mut items = Vec::new();
    for (language, voice, text, _) in SENTENCES {
        let request = GenerateSpeechInput {
            text: (*text).into(),
            voice_id: (*voice).into(),
            speed: 1.0,
            format: None,
            language: None,
        };
        let audio = engine
            .synthesize(&request, |_| ControlFlow::Continue(()))
            .expect(voice);
        let path = dir.path().join(format!("{language}.wav"));
        let wav = avb_tts::wav::encode_wav(&audio.samples, audio.sample_rate).expect("wav");
        std::fs::write(&path, wav).expect("write");
        items.push(serde_json::json!({"wav": path, "language": language}));
    }
    let cache = std::env::var_os("AVB_CACHE_DIR").map_or_else(
        || std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/avb"),
        std::path::PathBuf::from,
    );
    let mut child = std::process::Command::new(cache.join("venv/bin/python"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/python/asr_round_trip.py"
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the test venv's python (deploy/install-deps.sh)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&serde_json::to_vec(&items).expect("json"))
        .expect("write");
    let out = child.wait_with_output().expect("recognizer");
    assert!(out.status.success(), "the recognizer failed");
    let heard: Vec<String> = serde_json::from_slice(&out.stdout).expect("transcripts");
    for ((language, voice, text, least), heard) in SENTENCES.iter().zip(&heard) {
        let share = overlap(language, text, heard);
        eprintln!("{language} {voice}: {share:.2} of {text:?} heard as {heard:?}");
        assert!(
            share >= *least,
            "{language} ({voice}): only {share:.2} of {text:?} heard back: {heard:?}"
        );
    }
}

#[test]
fn overlap_counts_each_word_once() {
    assert_eq!(
        overlap("en", "the cat and the dog", "The dog and a cat!"),
        0.8
    );
    assert_eq!(overlap("zh", "今天天气", "今天天氣"), 0.75);
}
