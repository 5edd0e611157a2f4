//! The speech engine against the real Kokoro model and ONNX Runtime (no mocks).

mod common;

use std::ops::ControlFlow;

use avb_tts::tokens::MAX_CHUNK_TOKENS;
use avb_tts::{TtsConfig, TtsEngine, TtsError};
use avb_workflows::speech::GenerateSpeechInput;
use avb_workflows::speech::voices::G2p;

const US: G2p = G2p::English { british: false };

fn req(text: &str, voice: &str, speed: f32) -> GenerateSpeechInput {
    GenerateSpeechInput {
        text: text.into(),
        voice_id: voice.into(),
        speed,
        format: None,
        language: None,
    }
}

fn rms(samples: &[f32]) -> f32 {
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt()
}

#[test]
fn sentence_is_plausible_audible_and_deterministic() {
    let engine = common::engine();
    let text = "The quick brown fox jumps over the lazy dog, and then it takes a nap.";
    let a = engine
        .synthesize(&req(text, "af_heart", 1.0), |_| ControlFlow::Continue(()))
        .expect("speech");
    // ~14 words: a human says them in roughly 3–6 s; allow a wide band, but not silence or minutes.
    let secs = a.duration_secs();
    assert!(
        (2.0..9.0).contains(&secs),
        "duration {secs:.2}s implausible for {} chars",
        text.len()
    );
    assert!(
        rms(&a.samples) > 0.02,
        "audio is near-silent: rms {}",
        rms(&a.samples)
    );
    assert_eq!(a.sample_rate, 24_000);
    let b = engine
        .synthesize(&req(text, "af_heart", 1.0), |_| ControlFlow::Continue(()))
        .expect("speech");
    assert_eq!(
        a.samples, b.samples,
        "same input must give identical samples"
    );
    let fast = engine
        .synthesize(&req(text, "af_heart", 2.0), |_| ControlFlow::Continue(()))
        .expect("speech");
    assert!(
        fast.duration_secs() < secs * 0.75,
        "speed 2.0 should be much shorter: {} vs {secs}",
        fast.duration_secs()
    );
}

#[test]
fn phonemes_of_fixed_sentence() {
    let engine = common::engine();
    let (p, fallback) = engine
        .phonemize("Please read the report I read yesterday.", US)
        .expect("phonemes");
    assert_eq!(p, "plˈiz ɹˈid ðə ɹəpˈɔɹt ˌI ɹˈɛd jˈɛstəɹdˌA.");
    assert!(fallback.is_empty());
}

#[test]
fn out_of_lexicon_word_goes_through_espeak_fallback() {
    let engine = common::engine();
    let (with, fallback) = engine
        .phonemize("The zorblaxian ship landed.", US)
        .expect("phonemes");
    assert_eq!(fallback, vec!["zorblaxian".to_string()]);
    let (without, _) = engine.phonemize("The ship landed.", US).expect("phonemes");
    // The unknown word contributes phonemes of its own (not dropped, not a marker).
    assert!(with.len() > without.len() + 6, "{with} vs {without}");
    assert!(!with.contains('❓'));
    assert!(with.contains("blˈAk"), "{with}");
}

#[test]
fn missing_fallback_program_is_an_error_naming_the_word() {
    let mut config = TtsConfig::new(common::assets_dir());
    config.espeak_program = "/nonexistent/espeak-ng".into();
    config.intra_threads = 1;
    let engine = TtsEngine::load(config).expect("engine loads");
    let err = engine
        .plan(&req("The zorblaxian ship.", "af_heart", 1.0))
        .expect_err("must fail");
    let msg = err.to_string();
    assert!(matches!(err, TtsError::Phonemize { .. }), "{msg}");
    assert!(
        msg.contains("zorblaxian") && msg.contains("espeak-ng"),
        "{msg}"
    );
}

fn long_text() -> String {
    let para = "Durable workflows keep agents honest. When a worker crashes in the middle of a long job, \
        the orchestrator notices the missing heartbeat, schedules the activity again, and the agent \
        still receives exactly one result; nobody pays twice, and nothing is lost. ";
    let mut t = String::new();
    while t.len() < 3000 {
        t.push_str(para);
    }
    t.truncate(3000);
    t
}

#[test]
fn long_text_chunks_fit_and_all_are_spoken() {
    let engine = common::engine();
    let text = long_text();
    let plan = engine.plan(&req(&text, "af_heart", 1.0)).expect("plan");
    assert!(
        plan.chunks.len() >= 4,
        "3000 chars should need several chunks, got {}",
        plan.chunks.len()
    );
    for c in &plan.chunks {
        assert!(
            c.tokens.len() <= MAX_CHUNK_TOKENS,
            "chunk of {} tokens",
            c.tokens.len()
        );
        assert!(!c.tokens.is_empty());
    }
    let mut seen = Vec::new();
    let audio = engine
        .synthesize_plan(&plan, |done| {
            seen.push((done.index, done.total, rms(done.samples)));
            ControlFlow::Continue(())
        })
        .expect("speech");
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        (0..plan.chunks.len()).collect::<Vec<_>>()
    );
    assert!(
        seen.iter().all(|s| s.2 > 0.01),
        "a chunk came out silent: {seen:?}"
    );
    let short = engine
        .synthesize(&req(&text[..300], "af_heart", 1.0), |_| {
            ControlFlow::Continue(())
        })
        .expect("speech");
    let ratio = audio.duration_secs() / short.duration_secs();
    assert!(
        (6.0..14.0).contains(&ratio),
        "10x the text gave {ratio:.1}x the audio"
    );
}

#[test]
fn cancellation_between_chunks_stops_work() {
    let engine = common::engine();
    let text = long_text();
    let mut calls = 0;
    let err = engine
        .synthesize(&req(&text, "af_heart", 1.0), |_| {
            calls += 1;
            ControlFlow::Break(())
        })
        .expect_err("cancelled");
    assert_eq!(calls, 1);
    assert!(
        matches!(err, TtsError::Cancelled { chunks_done: 1, .. }),
        "{err}"
    );
}

#[test]
fn every_catalog_voice_speaks() {
    let engine = common::engine();
    let voices = engine.voices();
    assert_eq!(voices.len(), 54);
    for v in voices {
        // Each voice in its own language.
        let text = match v.language.as_str() {
            "es" => "Hola, ¿qué tal?",
            "fr-FR" => "Bonjour à tous.",
            "hi" => "नमस्ते दोस्तों।",
            "it" => "Ciao a tutti.",
            "pt-BR" => "Olá, tudo bem?",
            "zh" => "大家好。",
            "ja" => "こんにちは、元気ですか？",
            _ => "Hello there.",
        };
        let request = request(text, &v.id, None);
        let a = engine
            .synthesize(&request, |_| ControlFlow::Continue(()))
            .unwrap_or_else(|e| panic!("{}: {e}", v.id));
        assert!(
            a.duration_secs() > 0.3 && rms(&a.samples) > 0.01,
            "voice {} produced {:.2}s",
            v.id,
            a.duration_secs()
        );
    }
}

#[test]
fn bad_input_errors_name_the_problem() {
    let engine = common::engine();
    let err = engine
        .plan(&req("hi", "af_hart", 1.0))
        .expect_err("unknown voice");
    assert!(
        matches!(&err, TtsError::UnknownVoice { nearest, .. } if nearest[0] == "af_heart"),
        "{err}"
    );
    assert!(err.to_string().contains("af_heart"));
    assert!(!err.is_retryable());
    assert_eq!(err.kind(), "UnknownVoice");

    let err = engine.plan(&req("", "af_heart", 1.0)).expect_err("empty");
    assert_eq!(err.to_string(), "invalid input: text: must not be empty");
    assert_eq!(err.kind(), "InvalidInput");
    let err = engine
        .plan(&req(&"a".repeat(20_001), "af_heart", 1.0))
        .expect_err("long");
    assert_eq!(
        err.to_string(),
        "invalid input: text: is 20001 characters; the limit is 20000"
    );
    let err = engine.plan(&req("hi", "af_heart", 0.1)).expect_err("slow");
    assert_eq!(
        err.to_string(),
        "invalid input: speed: is 0.1; it must be between 0.5 and 2"
    );
    assert!(!err.is_retryable());
    let err = engine
        .plan(&req("!!! ...", "af_heart", 1.0))
        .expect_err("nothing to say");
    assert!(
        err.to_string().contains("nothing that can be spoken"),
        "{err}"
    );
}

#[test]
fn missing_model_is_a_configuration_error() {
    let dir = std::env::temp_dir().join(format!("avb-empty-assets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let Err(err) = TtsEngine::load(TtsConfig::new(&dir)) else {
        panic!("must fail")
    };
    let msg = err.to_string();
    assert!(
        msg.contains("kokoro-v1.0.int8.onnx") && msg.contains("fetch_assets.py"),
        "{msg}"
    );
    assert_eq!(err.kind(), "ConfigurationError");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn concurrent_sessions_give_identical_audio_in_order() {
    let one = common::engine();
    let mut config = TtsConfig::new(common::assets_dir());
    config.intra_threads = 1;
    config.sessions = 2;
    let two = TtsEngine::load(config).expect("engine loads");
    let text = "One sentence first. Then another, with a clause. And a third one to make several chunks \
        for the two sessions to share between them.";
    let r = req(text, "af_heart", 1.0);
    let mut order = Vec::new();
    let a = one
        .synthesize(&r, |_| ControlFlow::Continue(()))
        .expect("speech");
    let b = two
        .synthesize(&r, |d| {
            order.push(d.index);
            ControlFlow::Continue(())
        })
        .expect("speech");
    assert!(b.chunks >= 2, "want several chunks, got {}", b.chunks);
    assert_eq!(
        order,
        (0..b.chunks).collect::<Vec<_>>(),
        "chunks must be delivered in order"
    );
    assert_eq!(
        a.samples, b.samples,
        "two sessions must produce the same audio as one"
    );
    // A lead session of two threads for the first chunk, then the two one-thread sessions.
    let mut config = TtsConfig::new(common::assets_dir()).with_sessions(Some(1), Some(2), Some(2));
    assert_eq!(
        (config.sessions, config.intra_threads, config.lead_threads),
        (2, 1, 2)
    );
    // The same chunks as `one`, so the audio can be compared sample by sample.
    config.max_chunk_tokens = TtsConfig::new(common::assets_dir()).max_chunk_tokens;
    let led = TtsEngine::load(config).expect("engine with a lead session loads");
    let mut order = Vec::new();
    let c = led
        .synthesize(&r, |d| {
            order.push(d.index);
            ControlFlow::Continue(())
        })
        .expect("speech");
    assert_eq!(order, (0..c.chunks).collect::<Vec<_>>(), "in order");
    assert_eq!(
        c.samples.len(),
        a.samples.len(),
        "same length with a lead session"
    );
    let worst = a
        .samples
        .iter()
        .zip(&c.samples)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0_f32, f32::max);
    // Two intra-op threads may sum in another order: equal up to float rounding.
    assert!(worst < 1e-3, "lead-session audio differs by {worst}");
    // Streaming (the rest planned while the first sentence speaks) equals plan-then-synthesize.
    let plan = one.plan(&r).expect("plan");
    assert_eq!(plan.chunks.len(), a.chunks);
    let mut totals = Vec::new();
    let planned = one
        .synthesize_plan(&plan, |d| {
            totals.push(d.total);
            ControlFlow::Continue(())
        })
        .expect("speech");
    assert_eq!(
        planned.samples, a.samples,
        "streamed audio differs from planned"
    );
    assert!(totals.iter().all(|t| *t == Some(plan.chunks.len())));
}

#[test]
fn unloadable_onnx_runtime_is_a_configuration_error_not_a_panic() {
    let real = common::assets_dir();
    let dir = tempfile::tempdir().expect("tmp");
    for name in ["kokoro-v1.0.int8.onnx", "vocab.json", "voices"] {
        std::os::unix::fs::symlink(real.join(name), dir.path().join(name)).expect("link");
    }
    std::fs::write(
        dir.path().join("libonnxruntime.so"),
        b"not a shared library",
    )
    .expect("write");
    let Err(err) = TtsEngine::load(TtsConfig::new(dir.path())) else {
        panic!("must fail")
    };
    let msg = err.to_string();
    assert_eq!(err.kind(), "ConfigurationError");
    assert!(
        msg.contains("cannot load ONNX Runtime") && msg.contains("libonnxruntime.so"),
        "{msg}"
    );
}

fn request(text: &str, voice: &str, language: Option<&str>) -> GenerateSpeechInput {
    GenerateSpeechInput {
        text: text.into(),
        voice_id: voice.into(),
        speed: 1.0,
        format: None,
        language: language.map(str::to_owned),
    }
}

/// The phonemes the engine plans for `text` in `voice` (and `language`), chunk after chunk.
fn planned_phonemes(engine: &TtsEngine, text: &str, voice: &str, language: Option<&str>) -> String {
    engine
        .plan(&request(text, voice, language))
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .chunks
        .iter()
        .map(|c| c.phonemes.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each espeak-ng language reads its own text in its own voice: phonemes of that language
/// (not English spelling), all in Kokoro's vocabulary, spoken at a plausible length, the same
/// samples twice.
#[test]
fn each_espeak_language_speaks_its_own_phonemes() {
    let engine = common::engine();
    for (voice, text, expected) in [
        ("ef_dora", "¿Cómo estás? El niño tiene un perro.", "nˈiɲo"),
        ("ff_siwis", "Bonjour, comment allez-vous?", "bɔ̃ʒˈuʁ"),
        ("if_sara", "Buongiorno, come stai?", "ʤˈɔrno, kˌome"),
        ("pf_dora", "Bom dia, tudo bem?", "bˈoŋ ʤˈi"),
        ("hf_alpha", "नमस्ते। आप कैसे हैं?", "nəmˈʌsteː ˌaːp"),
    ] {
        let phonemes = planned_phonemes(&engine, text, voice, None);
        assert!(
            phonemes.contains(expected),
            "{voice}: {phonemes:?} lacks {expected:?}"
        );
        assert!(!phonemes.contains(['(', '^']), "{voice}: {phonemes:?}");
        let synthesize = || {
            engine
                .synthesize(&request(text, voice, None), |_| ControlFlow::Continue(()))
                .expect(voice)
        };
        let audio = synthesize();
        assert_eq!(
            audio.samples,
            synthesize().samples,
            "{voice}: not deterministic"
        );
        let words = text.split_whitespace().count() as f64;
        let per_word = audio.duration_secs() / words;
        assert!(
            (0.15..=1.2).contains(&per_word),
            "{voice}: {} s for {words} words",
            audio.duration_secs()
        );
        assert!(rms(&audio.samples) > 0.01, "{voice}: silent");
    }
}

/// Mandarin through the real model: Kokoro's tone-arrow phonemes, about 0.1–0.4 s per character
/// (a syllable each), not silent, the same samples twice, every phoneme in the vocabulary; a
/// character without a Mandarin reading is an error naming it.
#[test]
fn mandarin_is_read_in_mandarin() {
    let engine = common::engine();
    let han = |c: char| ('\u{4E00}'..='\u{9FFF}').contains(&c);
    let phonemes = speaks_its_language(
        &engine,
        "你好，今天怎么样？我们一起去银行吧。",
        "zf_xiaobei",
        0.1..=0.4,
        han,
    );
    assert!(
        phonemes.contains("ni↓xau↓") && phonemes.contains("i↗nxa↗ŋ"),
        "{phonemes}"
    );
    match engine.plan(&request("你好嗧", "zf_xiaobei", None)) {
        Err(TtsError::Phonemize { word, .. }) => assert_eq!(word, "嗧"),
        other => panic!("expected the character named, got {other:?}"),
    }
}

/// `text` in `voice` through the real model: its phonemes (returned) all in the vocabulary,
/// `per_character` seconds of audio per `counted` character, not silent, the same samples twice.
fn speaks_its_language(
    engine: &TtsEngine,
    text: &str,
    voice: &str,
    per_character: std::ops::RangeInclusive<f64>,
    counted: impl Fn(char) -> bool,
) -> String {
    let vocab =
        avb_tts::tokens::Vocab::load(&common::assets_dir().join("vocab.json")).expect("vocab");
    let phonemes = planned_phonemes(engine, text, voice, None);
    assert!(
        phonemes.chars().all(|c| c == ' ' || vocab.contains(c)),
        "{phonemes}"
    );
    let synthesize = || {
        engine
            .synthesize(&request(text, voice, None), |_| ControlFlow::Continue(()))
            .expect("speech")
    };
    let audio = synthesize();
    let characters = text.chars().filter(|c| counted(*c)).count() as f64;
    assert!(
        per_character.contains(&(audio.duration_secs() / characters)),
        "{} s for {characters} characters",
        audio.duration_secs()
    );
    assert!(rms(&audio.samples) > 0.01, "silent");
    assert_eq!(audio.samples, synthesize().samples, "not deterministic");
    phonemes
}

/// `language` overrides the voice's: an American voice reads French as French.
#[test]
fn the_language_argument_overrides_the_voices() {
    let engine = common::engine();
    let french = engine
        .plan(&request(
            "Bonjour, comment allez-vous?",
            "af_heart",
            Some("fr-FR"),
        ))
        .expect("plan");
    let phonemes: String = french.chunks.iter().map(|c| c.phonemes.clone()).collect();
    assert!(phonemes.contains("bɔ̃ʒˈuʁ"), "{phonemes}");
    let english = engine
        .plan(&request("Bonjour, comment allez-vous?", "af_heart", None))
        .expect("plan");
    let phonemes: String = english.chunks.iter().map(|c| c.phonemes.clone()).collect();
    assert!(!phonemes.contains("bɔ̃ʒˈuʁ"), "{phonemes}");
}

/// An unknown language tag is refused, naming the argument (every catalog language is read).
#[test]
fn unknown_language_tags_are_refused_by_name() {
    let engine = common::engine();
    match engine.plan(&request("hello", "af_heart", Some("klingon"))) {
        Err(TtsError::InvalidInput { field, message }) => {
            assert_eq!(field, "language");
            assert!(message.contains("klingon"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Japanese through the real model: cutlet's phonemes (long vowels, っ as ʔ, は read βa),
/// about 0.05–0.4 s per character, not silent, the same samples twice, every phoneme in the
/// vocabulary. `language: ja` reads Japanese in another language's voice; Latin words are read
/// in English; a number of ten digits or more digit by digit; a word the model cannot say (an
/// unknown kanji, an emoji, `%`) is an error naming it.
#[test]
fn japanese_is_read_in_japanese() {
    let engine = common::engine();
    let phonemes_of = |text: &str, voice: &str, language: Option<&str>| {
        planned_phonemes(&engine, text, voice, language)
    };
    let phonemes = speaks_its_language(
        &engine,
        "東京に行きます。今日はいい天気ですね、ちょっと待って！",
        "jf_alpha",
        0.05..=0.4,
        char::is_alphanumeric,
    );
    assert!(
        phonemes.contains("toːkʲoː ɲi ikʲimasɨ")
            && phonemes.contains("kʲoː βa iː teŋkʲi")
            && phonemes.contains("ʨoʔto"),
        "{phonemes}"
    );

    assert!(
        phonemes_of("東京に行きます。", "af_heart", Some("ja")).contains("toːkʲoː"),
        "language ja in an American voice"
    );
    let latin = phonemes_of("英語でhelloと言います。", "jf_alpha", None);
    assert!(latin.contains("de həlˈO to"), "{latin}");
    let digits = phonemes_of("番号は0123456789です。", "jf_alpha", None);
    assert!(
        digits.contains("ʣeɾo iʨi ɲi saɴ joɴ ɡo ɾokɯ nana haʨi kʲɨː"),
        "{digits}"
    );
    for (text, word) in [
        ("東京と𠮷野家", "𠮷"),
        ("ありがとう😀", "😀"),
        ("降水確率は20%です。", "%"),
    ] {
        match engine.plan(&request(text, "jf_alpha", None)) {
            Err(TtsError::Phonemize { word: named, .. }) => assert_eq!(named, word, "{text}"),
            other => panic!("{text}: expected {word} named, got {other:?}"),
        }
    }
}

/// Without the dictionary, Japanese text is a configuration error naming the missing file and
/// how to fetch it; the other languages still speak.
#[test]
fn missing_japanese_dictionary_is_a_configuration_error() {
    let assets = common::assets_dir();
    let dir = tempfile::tempdir().expect("tmp");
    for name in [
        "kokoro-v1.0.int8.onnx",
        "vocab.json",
        "libonnxruntime.so",
        "voices",
    ] {
        std::os::unix::fs::symlink(assets.join(name), dir.path().join(name)).expect("link");
    }
    let mut config = TtsConfig::new(dir.path());
    config.intra_threads = 1;
    let engine = TtsEngine::load(config).expect("engine loads without the dictionary");
    match engine.plan(&request("東京に行きます。", "jf_alpha", None)) {
        Err(err @ TtsError::Config(_)) => {
            let message = err.to_string();
            assert!(
                message.contains("sys.dic") && message.contains("deploy/fetch_assets.py"),
                "{message}"
            );
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    engine
        .plan(&request("Hello there.", "af_heart", None))
        .expect("English without the Japanese dictionary");
}

/// Sentences per espeak-ng language: greetings, questions, numbers, accents and nasals.
const LANGUAGE_SENTENCES: &[(&str, &str)] = &[
    ("es", "¿Cómo estás? El niño tiene un perro."),
    ("es", "Mañana llegan 25 personas a la estación de Sevilla."),
    (
        "es",
        "La guitarra está en la habitación, junto a la ventana.",
    ),
    ("fr-fr", "Bonjour, comment allez-vous?"),
    ("fr-fr", "Il y a 12 enfants dans le jardin, et un chien."),
    (
        "fr-fr",
        "Nous avons mangé du pain et bu un verre de vin blanc.",
    ),
    ("it", "Buongiorno, come stai?"),
    ("it", "Ci sono 7 gatti sulla scala della chiesa."),
    ("it", "Gli gnocchi della nonna sono buonissimi."),
    ("pt-br", "Bom dia, tudo bem?"),
    ("pt-br", "São 30 reais, mas a lição de hoje é grátis."),
    ("pt-br", "O coração da cidade fica perto do rio."),
    ("hi", "नमस्ते। आप कैसे हैं?"),
    ("hi", "मेरा नाम राम है और मैं दिल्ली में रहता हूँ।"),
    ("hi", "आज मौसम बहुत अच्छा है।"),
    // Mandarin: numbers, dates, polyphones decided by phrases (银行, 重新, 音乐), interjections,
    // every initial and final, and everyday paragraphs.
    ("zh", "你好，世界！"),
    ("zh", "我们一起去银行。"),
    ("zh", "这件事很重要，请重新做一次。"),
    ("zh", "我的书在桌子上。"),
    ("zh", "今天是2024年3月15日，气温是-3.5度。"),
    ("zh", "价格上涨了25%，约1234元。"),
    ("zh", "《红楼梦》是一部小说；你读过吗？"),
    ("zh", "行人在银行门口排队，一行一行地走。"),
    ("zh", "他得了第1名，电话是13800138000。"),
    ("zh", "音乐让人快乐。"),
    (
        "zh",
        "嗯，呣，哼，欸，哦，儿子，二十，耳朵，日子，知道，吃饭，自己，词语，思考，女儿，绿色，旅游，略微，学习，云朵，元旦，军队，去年，月亮，雪花。",
    ),
    ("zh", "比例是1/2，温度39℃，需要3-5个小时。"),
    ("zh", "生于1998年，10年后，3.14和1000。"),
    (
        "zh",
        "今天早上，我和朋友一起去公园散步。天气很好，阳光明媚，很多人在那里跑步、打太极拳。我们走了大约两个小时，然后找了一家小饭馆吃午饭。老板很热情，给我们推荐了几道拿手菜。",
    ),
    (
        "zh",
        "这家银行的行长说，今年的经济形势仍然面临不少困难，但是整体上还是在稳步增长。为了支持中小企业的发展，银行会继续降低贷款利率，并且简化审批流程。",
    ),
    (
        "zh",
        "他长得很高，从小就喜欢打篮球。长大以后，他成为了一名职业运动员，还参加过好几次重要的比赛。虽然受过伤，但他从来没有放弃过自己的梦想。",
    ),
    (
        "zh",
        "我觉得这个问题没有那么简单。我们需要重新考虑整个计划，看看还有哪些地方可以改进。如果大家都同意的话，我们下个星期再开会讨论一下。",
    ),
    (
        "zh",
        "这本书的作者是一位著名的历史学家，他用了十年的时间研究中国古代的音乐和文化。书中记载了很多有趣的故事，读起来一点也不枯燥。",
    ),
    (
        "zh",
        "妈妈让我去超市买一些水果和蔬菜，顺便再带一瓶酱油回来。我到了超市才发现忘了带钱包，只好用手机付款。",
    ),
    (
        "zh",
        "春天到了，地上的小草都发芽了，树上的花也开了。孩子们在院子里快乐地玩耍，小鸟在枝头唱着好听的歌。",
    ),
    (
        "zh",
        "会议结束以后，经理把大家召集在一起，重申了公司的规定，要求每个人都必须按时完成自己的工作，不得拖延。",
    ),
    (
        "zh",
        "据新华社报道，国务院常务会议今天在北京召开，会议研究部署了进一步扩大内需、促进消费的相关措施。会议指出，要着力稳定就业，增加城乡居民收入，提高社会保障水平。",
    ),
    (
        "zh",
        "小明的爸爸是一名医生，每天都要工作到很晚。有一次，小明生病了，爸爸连夜给他看病，还亲自熬药。小明长大后也想当一名医生，像爸爸一样帮助别人。",
    ),
    (
        "zh",
        "这座城市的交通越来越拥挤，特别是上下班高峰期，地铁里挤满了人。政府正在修建新的地铁线路，希望能够缓解交通压力。",
    ),
    (
        "zh",
        "人工智能技术的快速发展，正在深刻地改变着我们的生活方式。从智能手机里的语音助手，到自动驾驶的汽车，这些曾经只存在于科幻小说中的东西，如今都已经变成了现实。",
    ),
    (
        "zh",
        "他一边听音乐一边看书，不知不觉就睡着了。醒来的时候，外面已经下起了大雨。他赶紧把晾在阳台上的衣服收了进来。",
    ),
    (
        "zh",
        "我们学校的图书馆藏书丰富，环境安静，是同学们学习的好地方。每到考试的时候，这里总是座无虚席。",
    ),
    (
        "zh",
        "奶奶种的西红柿熟了，红彤彤的，看着就让人流口水。她把最大的几个摘下来，洗干净了分给我们吃。",
    ),
    (
        "zh",
        "你好，请问去火车站怎么走？一直往前走，到第二个路口向左拐，再走大概五百米就到了。谢谢你！不客气。",
    ),
    // Japanese: everyday sentences, literature, katakana loanwords (ヴ, ティ, ッ), long vowels,
    // particles, quotes and parentheses, numbers (prices, dates, decimals, thousands separators,
    // full-width digits, ranges), half-width katakana, small kana, and paragraphs.
    ("ja", "東京に行きます。"),
    ("ja", "こんにちは、世界！"),
    ("ja", "今日はいい天気ですね。"),
    ("ja", "コーヒーを二杯ください。"),
    ("ja", "ちょっと待って！"),
    ("ja", "学校で日本語を勉強しています。"),
    ("ja", "「はい」と彼は言った。"),
    ("ja", "キャッシュとチェック、ヴァイオリン。"),
    ("ja", "お母さんは「ありがとう」と言いました。"),
    ("ja", "新幹線は時速三百キロで走る。"),
    ("ja", "私の名前は田中です。"),
    ("ja", "すみません、もう一度お願いします。"),
    ("ja", "吾輩は猫である。名前はまだ無い。"),
    ("ja", "どこで生れたかとんと見当がつかぬ。"),
    (
        "ja",
        "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。",
    ),
    ("ja", "国境の長いトンネルを抜けると雪国であった。"),
    ("ja", "夜の底が白くなった。信号所に汽車が止まった。"),
    (
        "ja",
        "メロスは激怒した。必ず、かの邪智暴虐の王を除かなければならぬと決意した。",
    ),
    ("ja", "人工知能の研究は急速に進歩しています。"),
    ("ja", "この問題について、皆さんはどう思いますか？"),
    ("ja", "彼女はピアノを弾くのが上手だ。"),
    ("ja", "明日は雨が降るかもしれません。"),
    ("ja", "ジョンさんはアメリカから来ました。"),
    ("ja", "会議は午後三時から始まります。"),
    ("ja", "ファイルを保存してから、アプリを閉じてください。"),
    ("ja", "ティッシュペーパーとウィスキーとフィルム。"),
    ("ja", "ぎゅうにゅうをのみました。"),
    ("ja", "ディズニーランドへ行きたい！"),
    ("ja", "お茶でもいかがですか。"),
    ("ja", "「本当に？」と彼は驚いた様子で尋ねた。"),
    ("ja", "株式会社ミライの山田太郎と申します。"),
    ("ja", "この薬は一日三回、食後に飲んでください。"),
    ("ja", "渋谷駅で待ち合わせしましょう。"),
    ("ja", "あっ、しまった！財布を忘れた。"),
    ("ja", "ええと、それはですね…"),
    ("ja", "東京都千代田区丸の内一丁目"),
    ("ja", "日本（にほん）は島国です。"),
    ("ja", "ヴェネツィアとヴィーナス。"),
    ("ja", "すごーい！やったー！"),
    ("ja", "これはペンです。あれは本です。"),
    ("ja", "冷蔵庫の中に牛乳がありますか。"),
    ("ja", "行って来ます。ただいま。おかえりなさい。"),
    ("ja", "お疲れ様でした、また明日。"),
    ("ja", "その映画はとても面白かったです。"),
    ("ja", "鉄道の駅から徒歩五分の場所にあります。"),
    ("ja", "金閣寺は京都にある有名なお寺です。"),
    ("ja", "全角　スペースと 半角 スペース。"),
    ("ja", "カタカナのリンゴとひらがなのりんご。"),
    ("ja", "ッてなんだ、ンってなんだ。"),
    ("ja", "わたしはきのうともだちとえいがをみにいきました。"),
    ("ja", "1234円です。"),
    ("ja", "2025年3月15日に会いましょう？"),
    ("ja", "新幹線は時速300キロで走る。"),
    ("ja", "3.14と100000"),
    ("ja", "価格は1,000円から2,500円です。"),
    ("ja", "【速報】東京で震度3の地震。"),
    ("ja", "10〜20人が参加しました。"),
    ("ja", "ｶﾀｶﾅとﾊﾝｶｸのテスト。"),
    ("ja", "すごぉぉい！えぇ、そうなんだぁ。"),
    ("ja", "電話番号は０３－１２３４－５６７８です。"),
    ("ja", "『吾輩は猫である』は夏目漱石の小説です。"),
    (
        "ja",
        "きょうは、とてもいいてんきですね。さんぽにいきましょう。",
    ),
    (
        "ja",
        "昨日、友達と一緒に新しいレストランへ行きました。料理はとてもおいしくて、値段も安かったです。また行きたいと思います。",
    ),
    (
        "ja",
        "政府は来年度の予算案を閣議決定しました。総額は過去最大となり、社会保障費の増加が主な要因です。専門家からは財政再建を求める声が上がっています。",
    ),
    (
        "ja",
        "「もしもし、田中さんですか？」「はい、そうです。どちら様でしょうか？」「山田です。明日の会議の件でお電話しました。」",
    ),
    (
        "ja",
        "春になると、公園の桜が一斉に咲き始めます。多くの人々がお花見を楽しみに集まり、夜遅くまでにぎわいます。",
    ),
    (
        "ja",
        "このアプリを使えば、いつでもどこでも簡単に日本語の勉強ができます。まずは無料で試してみてください。",
    ),
];

/// The test venv's Python (deploy/install-deps.sh puts misaki there).
fn venv_python() -> std::path::PathBuf {
    let cache = std::env::var_os("AVB_CACHE_DIR").map_or_else(
        || std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/avb"),
        std::path::PathBuf::from,
    );
    cache.join("venv/bin/python")
}

/// Our phonemes for the espeak-ng languages, Mandarin and Japanese against Kokoro's own G2P for
/// them (misaki 0.9.4's `EspeakG2P`, `ZHG2P` and default Japanese G2P, run from PyPI in the test
/// venv), compared as the model receives them: token by token (misaki leaves marks such as `¿`
/// that the model's vocabulary drops; we drop them first); Mandarin character for character,
/// Japanese too once the marks the model drops (the « » misaki writes for parentheses, `-`) are
/// taken out of misaki's.
#[test]
fn languages_match_the_reference_g2p() {
    use std::io::Write as _;
    let engine = common::engine();
    let vocab =
        avb_tts::tokens::Vocab::load(&common::assets_dir().join("vocab.json")).expect("vocab");
    let mut child = std::process::Command::new(venv_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/python/misaki_phonemes.py"
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the test venv's python (deploy/install-deps.sh)");
    let input = serde_json::to_vec(LANGUAGE_SENTENCES).expect("json");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write");
    let out = child.wait_with_output().expect("misaki");
    assert!(out.status.success(), "misaki failed");
    let reference: Vec<String> = serde_json::from_slice(&out.stdout).expect("misaki's phonemes");
    for ((language, sentence), theirs) in LANGUAGE_SENTENCES.iter().zip(&reference) {
        let g2p = match *language {
            "zh" => G2p::Mandarin,
            "ja" => G2p::Japanese,
            espeak => G2p::Espeak(espeak),
        };
        let (ours, _) = engine.phonemize(sentence, g2p).expect(sentence);
        if g2p == G2p::Mandarin {
            assert_eq!(&ours, theirs, "{sentence:?}");
        }
        if g2p == G2p::Japanese {
            let spoken: String = theirs
                .chars()
                .filter(|&c| c == ' ' || vocab.contains(c))
                .collect();
            assert_eq!(ours, spoken, "{sentence:?}: misaki {theirs:?}");
        }
        assert_eq!(
            vocab.encode(&ours),
            vocab.encode(theirs),
            "{language} {sentence:?}: ours {ours:?}, misaki {theirs:?}"
        );
        assert!(
            ours.chars().all(|c| c == ' ' || vocab.contains(c)),
            "{ours:?}"
        );
    }
}
