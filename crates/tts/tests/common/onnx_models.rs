//! Tiny ONNX models built byte by byte, to run one `ConvInteger` on the real ONNX Runtime.

use avb_tts::onnx_graph::proto::{
    DT_INT32, DT_UINT8, int_attribute, ints_attribute, node_proto, tensor_proto,
};
use avb_tts::onnx_graph::wire::Writer;

/// One 1-D `ConvInteger` over input `x` [1, channels, length] (uint8) with uint8 weights.
#[derive(Debug, Clone)]
pub struct ConvSpec {
    pub channels: usize,
    pub filters: usize,
    pub kernel: usize,
    pub dilation: i64,
    pub pads: [i64; 2],
    pub stride: i64,
    pub group: i64,
    pub length: usize,
    /// Sequences per run (the model's batch dimension).
    pub batch: usize,
    /// `None`: the node has no input zero point (zero).
    pub x_zero_point: Option<u8>,
    /// `None`: the node has no weight zero point input (zero).
    pub w_zero_point: Option<u8>,
    pub opset: u64,
}

impl ConvSpec {
    pub fn new(channels: usize, filters: usize, kernel: usize) -> Self {
        Self {
            channels,
            filters,
            kernel,
            dilation: 1,
            pads: [0, 0],
            stride: 1,
            group: 1,
            length: 40,
            batch: 1,
            x_zero_point: Some(131),
            w_zero_point: Some(120),
            opset: 20,
        }
    }
}

/// Deterministic bytes covering the whole 0..=255 range.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

fn value_info(name: &str, data_type: u64, dims: Option<&[usize]>) -> Vec<u8> {
    let mut tensor_type = Writer::default();
    tensor_type.varint(1, data_type);
    if let Some(dims) = dims {
        let mut shape = Writer::default();
        for d in dims {
            let mut dim = Writer::default();
            dim.varint(1, *d as u64);
            shape.bytes(1, &dim.finish());
        }
        tensor_type.bytes(2, &shape.finish());
    }
    let mut ty = Writer::default();
    ty.bytes(1, &tensor_type.finish());
    let mut w = Writer::default();
    w.string(1, name).bytes(2, &ty.finish());
    w.finish()
}

/// A model of one convolution (output `y0`).
pub fn conv_model(spec: &ConvSpec, seed: u64) -> Vec<u8> {
    convs_model(spec, &[spec.stride], seed)
}

/// A model of one convolution per entry of `strides`, all over input `x` with the same weights,
/// outputs `y0`, `y1`, …, nodes `conv0`, `conv1`, ….
pub fn convs_model(spec: &ConvSpec, strides: &[i64], seed: u64) -> Vec<u8> {
    let per_group = spec.channels / spec.group as usize;
    let weights = bytes(spec.filters * per_group * spec.kernel, seed);
    let mut graph = Writer::default();
    for (i, stride) in strides.iter().enumerate() {
        let mut inputs = vec![
            "x",
            "w",
            if spec.x_zero_point.is_some() {
                "zx"
            } else {
                ""
            },
        ];
        if spec.w_zero_point.is_some() {
            inputs.push("zw");
        }
        let attrs = [
            ints_attribute("kernel_shape", &[spec.kernel as i64]),
            ints_attribute("dilations", &[spec.dilation]),
            ints_attribute("pads", &spec.pads),
            ints_attribute("strides", &[*stride]),
            int_attribute("group", spec.group),
        ];
        let (output, name) = (format!("y{i}"), format!("conv{i}"));
        graph.bytes(
            1,
            &node_proto("ConvInteger", &name, &inputs, &[&output], &attrs),
        );
    }
    graph.string(2, "convs");
    let w_dims = [spec.filters, per_group, spec.kernel].map(|d| d as i64);
    graph.bytes(5, &tensor_proto("w", DT_UINT8, &w_dims, &weights));
    if let Some(zx) = spec.x_zero_point {
        graph.bytes(5, &tensor_proto("zx", DT_UINT8, &[], &[zx]));
    }
    if let Some(zw) = spec.w_zero_point {
        graph.bytes(5, &tensor_proto("zw", DT_UINT8, &[], &[zw]));
    }
    let x_dims = [spec.batch, spec.channels, spec.length];
    graph.bytes(11, &value_info("x", DT_UINT8, Some(&x_dims)));
    for i in 0..strides.len() {
        graph.bytes(12, &value_info(&format!("y{i}"), DT_INT32, None));
    }
    model(graph, spec.opset)
}

/// A model of `graph` (IR version 8) importing the default domain at `opset`.
fn model(mut graph: Writer, opset: u64) -> Vec<u8> {
    let mut import = Writer::default();
    import.string(1, "").varint(2, opset);
    let mut model = Writer::default();
    model
        .varint(1, 8)
        .bytes(8, &import.finish())
        .bytes(7, &graph.finish());
    model.finish()
}

/// The ONNX data type of float32.
const DT_FLOAT: u64 = 1;

/// A model `y = Pow(x, e)` over float32 `x` [n], with `e` a constant (`Some`) or a second
/// input (`None`).
pub fn power_model(exponent: Option<f32>) -> Vec<u8> {
    let mut graph = Writer::default();
    graph.bytes(1, &node_proto("Pow", "power", &["x", "e"], &["y"], &[]));
    graph.string(2, "power");
    match exponent {
        Some(e) => {
            graph.bytes(5, &tensor_proto("e", DT_FLOAT, &[], &e.to_le_bytes()));
        }
        None => {
            graph.bytes(11, &value_info("e", DT_FLOAT, None));
        }
    }
    graph.bytes(11, &value_info("x", DT_FLOAT, None));
    graph.bytes(12, &value_info("y", DT_FLOAT, None));
    model(graph, 20)
}
