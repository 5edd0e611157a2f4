//! The int8 convolution rewrite (`tts::onnx_graph`) on the real ONNX Runtime: the rewritten
//! graph computes exactly what the original computes, and what cannot be rewritten is left alone.

mod common;
#[path = "common/onnx_models.rs"]
mod onnx_models;

use avb_tts::model::{GraphForm, GraphSource, session};
use avb_tts::onnx_graph::wire::{Field, fields, first};
use avb_tts::onnx_graph::{RewriteError, RewriteReport, int8_matmul_is_exact, rewrite_graph};
use avb_tts::{TtsConfig, TtsEngine};
use avb_workflows::speech::GenerateSpeechInput;
use onnx_models::{ConvSpec, bytes, conv_model, convs_model, power_model};
use ort::value::Tensor;

/// Outputs `y0`, `y1`, … (`count` of them) of a conv model on input `x`.
fn run_convs(model: &[u8], spec: &ConvSpec, x: &[u8], count: usize) -> Vec<Vec<i32>> {
    let lib = common::assets_dir().join("libonnxruntime.so");
    let source = GraphSource::Memory(model);
    let mut session = session(&lib, "test conv", source, 1, false).expect("loads");
    let x = Tensor::from_array(([spec.batch, spec.channels, spec.length], x.to_vec())).expect("x");
    let outputs = session.run(ort::inputs!["x" => x]).expect("runs");
    (0..count)
        .map(|i| {
            let (_, y) = outputs[format!("y{i}").as_str()]
                .try_extract_tensor::<i32>()
                .expect("int32 output");
            y.to_vec()
        })
        .collect()
}

fn run_conv(model: &[u8], spec: &ConvSpec, x: &[u8]) -> Vec<i32> {
    run_convs(model, spec, x, 1).remove(0)
}

/// For each field `number` of the main graph (nodes: 1, initializers: 5), its string field `key`
/// (a node's op type: 4, an initializer's name: 8).
fn graph_strings(model: &[u8], number: u32, key: u32) -> Vec<String> {
    let model = fields(model).expect("model");
    let graph = first(&model, 7).and_then(Field::bytes).expect("graph");
    let graph = fields(graph).expect("graph fields");
    graph
        .iter()
        .filter(|f| f.number == number)
        .map(|f| {
            let message = fields(f.bytes().expect("message")).expect("message fields");
            let value = first(&message, key).and_then(Field::string);
            value.expect("string field").to_string()
        })
        .collect()
}

/// Op types of the main graph's nodes, in order.
fn op_types(model: &[u8]) -> Vec<String> {
    graph_strings(model, 1, 4)
}

fn initializer_names(model: &[u8]) -> Vec<String> {
    graph_strings(model, 5, 8)
}

#[test]
fn rewritten_convolutions_give_identical_int32_outputs() {
    let mut specs = Vec::new();
    // Kokoro's shapes in small: kernels 1/3/7/11, dilations 1/3/5, same-length padding.
    for (kernel, dilation) in [(1, 1), (3, 1), (3, 5), (7, 3), (11, 1), (11, 5)] {
        let mut spec = ConvSpec::new(16, 8, kernel);
        spec.dilation = dilation;
        let pad = dilation * (kernel as i64 - 1) / 2;
        spec.pads = [pad, pad];
        specs.push(spec);
    }
    let mut uneven = ConvSpec::new(5, 3, 4);
    uneven.pads = [2, 0];
    specs.push(uneven);
    // Two sequences at once: each gets its own windows.
    let mut batched = ConvSpec::new(6, 5, 7);
    (batched.batch, batched.dilation, batched.pads) = (2, 2, [6, 6]);
    specs.push(batched);
    let mut unpadded = ConvSpec::new(6, 9, 5);
    unpadded.length = 9;
    specs.push(unpadded);
    let mut no_w_zero_point = ConvSpec::new(8, 4, 3);
    no_w_zero_point.w_zero_point = None;
    no_w_zero_point.pads = [1, 1];
    specs.push(no_w_zero_point);
    let mut no_zero_points = ConvSpec::new(8, 4, 3);
    (no_zero_points.x_zero_point, no_zero_points.w_zero_point) = (None, None);
    no_zero_points.pads = [2, 1];
    specs.push(no_zero_points);
    for (x_zp, w_zp) in [(0, 0), (255, 255), (0, 255), (128, 128)] {
        let mut extremes = ConvSpec::new(32, 4, 3);
        extremes.pads = [1, 1];
        extremes.x_zero_point = Some(x_zp);
        extremes.w_zero_point = Some(w_zp);
        specs.push(extremes);
    }

    for (seed, spec) in specs.iter().enumerate() {
        let model = conv_model(spec, seed as u64);
        let (rewritten, report) = rewrite_graph(&model).expect("rewrites");
        assert_eq!(
            report,
            RewriteReport {
                convs_rewritten: 1,
                convs_kept: 0,
                squares_as_products: 0,
            },
            "{spec:?}"
        );
        let ops = op_types(&rewritten);
        assert!(!ops.contains(&"ConvInteger".to_string()), "{ops:?}");
        assert!(ops.contains(&"MatMulInteger".to_string()), "{ops:?}");
        // The uint8 weights are replaced, not kept beside their int8 form.
        assert!(!initializer_names(&rewritten).contains(&"w".to_string()));

        let x = bytes(spec.batch * spec.channels * spec.length, 1000 + seed as u64);
        let expected = run_conv(&model, spec, &x);
        let got = run_conv(&rewritten, spec, &x);
        assert_eq!(got.len(), expected.len(), "{spec:?}");
        assert!(
            expected.iter().any(|v| *v != 0),
            "a conv of random bytes is not all zero"
        );
        if int8_matmul_is_exact() {
            assert_eq!(got, expected, "rewritten conv differs for {spec:?}");
        } else {
            eprintln!("no AVX-512 VNNI: full-range outputs not compared for {spec:?}");
        }
    }
}

#[test]
fn rewritten_convolutions_are_exact_on_any_cpu_for_seven_bit_inputs() {
    // Inputs and zero point below 128: a u8×s8 pair sum stays within i16 (2·127·128 < 32768),
    // so even the AVX2 kernel cannot saturate, and the equality holds on every x86 CPU.
    let mut spec = ConvSpec::new(24, 6, 11);
    spec.dilation = 3;
    spec.pads = [15, 15];
    spec.x_zero_point = Some(57);
    let model = conv_model(&spec, 42);
    let (rewritten, report) = rewrite_graph(&model).expect("rewrites");
    assert_eq!(report.convs_rewritten, 1);
    let x: Vec<u8> = bytes(spec.channels * spec.length, 43)
        .into_iter()
        .map(|b| b & 0x7f)
        .collect();
    assert_eq!(run_conv(&rewritten, &spec, &x), run_conv(&model, &spec, &x));
}

#[test]
fn weights_shared_with_a_kept_convolution_stay() {
    let mut spec = ConvSpec::new(8, 4, 3);
    spec.pads = [1, 1];
    // Three convolutions over the same weights: two rewritten, one strided (kept).
    let model = convs_model(&spec, &[1, 2, 1], 9);
    let (rewritten, report) = rewrite_graph(&model).expect("rewrites");
    assert_eq!(
        report,
        RewriteReport {
            convs_rewritten: 2,
            convs_kept: 1,
            squares_as_products: 0,
        }
    );
    assert!(initializer_names(&rewritten).contains(&"w".to_string()));
    let x: Vec<u8> = bytes(spec.channels * spec.length, 10)
        .into_iter()
        .map(|b| b & 0x7f)
        .collect();
    assert_eq!(
        run_convs(&rewritten, &spec, &x, 3),
        run_convs(&model, &spec, &x, 3)
    );
}

#[test]
fn strided_grouped_invalid_and_old_opset_convolutions_are_left_alone() {
    let mut strided = ConvSpec::new(4, 4, 3);
    strided.stride = 2;
    let mut grouped = ConvSpec::new(4, 4, 3);
    grouped.group = 2;
    let mut invalid_dilation = ConvSpec::new(4, 4, 3);
    invalid_dilation.dilation = 0;
    for spec in [strided, grouped, invalid_dilation] {
        let model = conv_model(&spec, 7);
        let (out, report) = rewrite_graph(&model).expect("reads");
        assert_eq!(
            report,
            RewriteReport {
                convs_rewritten: 0,
                convs_kept: 1,
                squares_as_products: 0,
            }
        );
        assert_eq!(out, model, "an unchanged model is returned byte for byte");
    }
    let mut old = ConvSpec::new(4, 4, 3);
    old.opset = 10;
    let model = conv_model(&old, 7);
    let (out, report) = rewrite_graph(&model).expect("reads");
    assert_eq!(report.convs_rewritten, 0);
    assert_eq!(out, model);
}

#[test]
fn a_rewritten_model_is_refused_and_garbage_is_an_error() {
    let model = conv_model(&ConvSpec::new(4, 4, 3), 3);
    let (rewritten, _) = rewrite_graph(&model).expect("rewrites");
    assert!(matches!(
        rewrite_graph(&rewritten),
        Err(RewriteError::NameClash)
    ));
    let err = rewrite_graph(&model[..model.len() / 2]).expect_err("truncated");
    assert!(err.to_string().contains("malformed protobuf"), "{err}");
}

fn run_power(model: &[u8], x: &[f32]) -> Vec<f32> {
    let lib = common::assets_dir().join("libonnxruntime.so");
    let mut session = session(&lib, "power", GraphSource::Memory(model), 1, false).expect("loads");
    let x = Tensor::from_array(([x.len()], x.to_vec())).expect("x");
    let outputs = session.run(ort::inputs!["x" => x]).expect("runs");
    let (_, y) = outputs["y"].try_extract_tensor::<f32>().expect("y");
    y.to_vec()
}

#[test]
fn constant_squares_become_products_with_identical_results() {
    let model = power_model(Some(2.0));
    let (rewritten, report) = rewrite_graph(&model).expect("rewrites");
    assert_eq!(report.squares_as_products, 1);
    assert_eq!(op_types(&rewritten), ["Mul"]);
    // Every exponent and mantissa pattern's neighbourhood: tiny, huge, subnormal, negative.
    let x: Vec<f32> = (0..200_000_u32)
        .map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761)))
        .filter(|v| v.is_finite())
        .collect();
    let (expected, got) = (run_power(&model, &x), run_power(&rewritten, &x));
    let same = expected
        .iter()
        .zip(&got)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "Mul(x, x) must give Pow(x, 2)'s bits");

    // Other exponents, and an exponent that is not a constant, stay powers.
    for other in [
        power_model(Some(3.0)),
        power_model(Some(0.5)),
        power_model(None),
    ] {
        let (out, report) = rewrite_graph(&other).expect("reads");
        assert_eq!(report.squares_as_products, 0);
        assert_eq!(out, other, "left byte for byte");
    }
}

fn engine_on_original_graph() -> TtsEngine {
    let mut config = TtsConfig::new(common::assets_dir());
    config.intra_threads = 1;
    config.rewrite_convs = false;
    TtsEngine::load(config).expect("engine loads")
}

#[test]
fn kokoro_speaks_bit_identical_audio_with_the_rewritten_graph() {
    let fast = common::engine();
    if !int8_matmul_is_exact() {
        // Without VNNI the rewrite could round differently, so the engine must not use it.
        assert_eq!(fast.graph_form(), GraphForm::Original);
        eprintln!("no AVX-512 VNNI: checked that the engine runs the original graph");
        return;
    }
    // Kokoro v1.0 int8: 87 ConvInteger, of which 3 are strided; 50 snake activations square
    // a sine with Pow(·, 2).
    assert_eq!(
        fast.graph_form(),
        GraphForm::Rewritten(RewriteReport {
            convs_rewritten: 84,
            convs_kept: 3,
            squares_as_products: 50,
        })
    );
    let original = engine_on_original_graph();
    assert_eq!(original.graph_form(), GraphForm::Original);
    let req = GenerateSpeechInput {
        text: "Durable calls survive crashes; the audio must not change by one bit.".into(),
        voice_id: "af_heart".into(),
        speed: 1.0,
        format: None,
        language: None,
    };
    let a = fast
        .synthesize(&req, |_| std::ops::ControlFlow::Continue(()))
        .expect("fast");
    let b = original
        .synthesize(&req, |_| std::ops::ControlFlow::Continue(()))
        .expect("original");
    assert!(a.samples.len() > 24_000, "at least a second of audio");
    assert_eq!(a.samples, b.samples, "same samples, bit for bit");
}
