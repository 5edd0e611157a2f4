//! Runs the model's 1-D integer convolutions as int8 matrix products, with bit-identical
//! results.
//!
//! Why: two thirds of Kokoro's time is `ConvInteger` (bench/profile_ops.py). ONNX Runtime
//! runs it as im2col plus an unsigned×unsigned GEMM whose weights are re-packed on every call.
//! `MatMulInteger` with a constant *signed* right-hand side is pre-packed once at load and runs
//! on the unsigned×signed VNNI kernels: measured 2.1× faster on the same products. So each
//! stride-1, ungrouped `ConvInteger` over uint8 weights becomes
//!
//! ```text
//! x [N,C,L] ─Transpose→ [N,L,C] ─Pad(x_zero_point)→ [N,Lp,C]
//!   ─Gather(rows [L',K]: t + j·dilation)→ [N,L',K,C] ─Reshape→ [N,L',K·C]
//!   ─MatMulInteger(B [K·C,M] int8, x_zero_point, w_zero_point−128)→ [N,L',M]
//!   ─Transpose→ [N,M,L']
//! ```
//!
//! The weights become `B[j·C+c][m] = w[m][c][j] − 128` with the zero point shifted by the same
//! 128, so every product `(x − zx)·(w − zw)` and every int32 sum is exactly what `ConvInteger`
//! computes. Padding uses the input's zero point, as ONNX Runtime's im2col does. The row
//! table comes from the input's length at run time (`Shape`, `Range`, `Add` of the taps'
//! offsets), so any length works.
//!
//! Exactness needs a kernel that does not saturate u8×s8 pair sums: VNNI does; the AVX2
//! fallback (`vpmaddubsw`) may. The caller decides (`int8_matmul_is_exact`).
//!
//! The same pass turns `Pow(x, 2)` with a constant exponent into `Mul(x, x)`: ONNX Runtime's
//! power kernel squares in a scalar loop, its `Mul` in vector code, and both give the one
//! correctly rounded `x·x` (checked bit for bit on Kokoro's audio).

use std::collections::{HashMap, HashSet};

use thiserror::Error;

use super::proto::{
    DT_FLOAT, DT_INT8, DT_INT64, DT_UINT8, int_attribute, ints_attribute, node_proto, tensor_proto,
};
use super::wire::{Field, Value, WireError, Writer, fields, first, repeated_i64, strings};

/// Prefix of every name the rewrite adds, so it can never clash with the model's own.
const PREFIX: &str = "avb_conv_rewrite/";

/// The default ONNX opset must have `Pad` with tensor inputs (11) for the nodes we add.
const MIN_OPSET: u64 = 11;

#[derive(Debug, Error)]
pub enum RewriteError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("model has no graph")]
    NoGraph,
    #[error("model already uses the name prefix '{PREFIX}' (rewritten twice?)")]
    NameClash,
}

/// What the rewrite did, for logs and `avb speak --json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewriteReport {
    pub convs_rewritten: usize,
    /// `ConvInteger` nodes left as they were (strided, grouped, or weights not inline uint8).
    pub convs_kept: usize,
    /// `Pow(x, 2)` nodes run as `Mul(x, x)`: the same correctly rounded square, without
    /// ONNX Runtime's general power loop (the model's 50 snake activations square a sine).
    pub squares_as_products: usize,
}

impl RewriteReport {
    /// Whether the rewrite changed anything.
    pub fn changed(&self) -> bool {
        self.convs_rewritten + self.squares_as_products > 0
    }
}

/// A uint8 tensor stored in the model: dims and bytes.
struct U8Tensor {
    dims: Vec<i64>,
    data: Vec<u8>,
}

fn u8_tensor(tensor: &[Field<'_>]) -> Result<Option<U8Tensor>, WireError> {
    let data_type = first(tensor, 2).and_then(Field::varint);
    // data_location 1 = EXTERNAL: the bytes live in another file.
    let external = tensor
        .iter()
        .any(|f| f.number == 14 && f.varint() == Some(1));
    if data_type != Some(DT_UINT8) || external {
        return Ok(None);
    }
    let dims = repeated_i64(tensor, 1)?;
    let data = match first(tensor, 9).and_then(Field::bytes) {
        Some(raw) => raw.to_vec(),
        // Without raw_data, uint8 values are stored one per int32_data entry.
        None => repeated_i64(tensor, 5)?
            .into_iter()
            .map(|v| v as u8)
            .collect(),
    };
    let expected: i64 = dims.iter().product();
    Ok((usize::try_from(expected) == Ok(data.len())).then_some(U8Tensor { dims, data }))
}

/// A `ConvInteger` node we can rewrite, with what the new nodes need.
struct Conv<'a> {
    name: String,
    x: &'a str,
    weight: &'a str,
    x_zero_point: &'a str,
    w_zero_point: &'a str,
    output: &'a str,
    dilation: i64,
    pads: [i64; 2],
    /// `kernel_shape`, when given: must match the weights.
    kernel: Option<i64>,
}

/// The fields of a `ConvInteger` node if it is a stride-1, ungrouped 1-D convolution with
/// explicit (or no) padding; `None` for any other node.
fn as_plain_conv<'a>(node: &[Field<'a>]) -> Result<Option<Conv<'a>>, WireError> {
    let op = first(node, 4).and_then(Field::string);
    let domain = first(node, 7).and_then(Field::string).unwrap_or("");
    if op != Some("ConvInteger") || !matches!(domain, "" | "ai.onnx") {
        return Ok(None);
    }
    let inputs = strings(node, 1);
    let outputs = strings(node, 2);
    if inputs.len() < 2 || inputs[1].is_empty() || outputs.len() != 1 {
        return Ok(None);
    }
    let (mut dilation, mut pads, mut kernel) = (1, [0, 0], None);
    for attr in node
        .iter()
        .filter(|f| f.number == 5)
        .filter_map(Field::bytes)
    {
        let attr = fields(attr)?;
        let name = first(&attr, 1).and_then(Field::string).unwrap_or("");
        let int = first(&attr, 3).and_then(Field::varint);
        let ints = repeated_i64(&attr, 8)?;
        let plain = match name {
            "group" => int == Some(1),
            "strides" => ints.iter().all(|s| *s == 1),
            "auto_pad" => {
                let s = first(&attr, 4).and_then(Field::string);
                matches!(s, None | Some("NOTSET"))
            }
            // Values ONNX Runtime would refuse are left for it to refuse.
            "dilations" if ints.len() == 1 && ints[0] >= 1 => {
                dilation = ints[0];
                true
            }
            "pads" if ints.len() == 2 && ints.iter().all(|p| *p >= 0) => {
                pads = [ints[0], ints[1]];
                true
            }
            "kernel_shape" if ints.len() == 1 => {
                kernel = Some(ints[0]);
                true
            }
            _ => false,
        };
        if !plain {
            return Ok(None);
        }
    }
    Ok(Some(Conv {
        // Named after the output, which is unique in a valid graph (node names need not be).
        name: format!("{PREFIX}{}", outputs[0]),
        x: inputs[0],
        weight: inputs[1],
        x_zero_point: inputs.get(2).copied().unwrap_or(""),
        w_zero_point: inputs.get(3).copied().unwrap_or(""),
        output: outputs[0],
        dilation,
        pads,
        kernel,
    }))
}

/// Whether `tensor` (a `TensorProto`) is one float32 equal to 2.
fn is_float_two(tensor: &[Field<'_>]) -> Result<bool, WireError> {
    let external = tensor
        .iter()
        .any(|f| f.number == 14 && f.varint() == Some(1));
    if first(tensor, 2).and_then(Field::varint) != Some(DT_FLOAT) || external {
        return Ok(false);
    }
    let dims = repeated_i64(tensor, 1)?;
    if dims.iter().product::<i64>() != 1 {
        return Ok(false);
    }
    // raw_data (9), or float_data (4): packed bytes or one fixed32.
    let bytes: Option<[u8; 4]> = match first(tensor, 9).and_then(Field::bytes) {
        Some(raw) => raw.try_into().ok(),
        None => match first(tensor, 4).map(|f| f.value) {
            Some(Value::Bytes(packed)) => packed.try_into().ok(),
            Some(Value::Fixed32(b)) => Some(b),
            _ => None,
        },
    };
    Ok(bytes.is_some_and(|b| f32::from_le_bytes(b) == 2.0))
}

/// `Mul(x, x)` for a node `Pow(x, e)` whose exponent is a constant 2; `None` for any other node.
fn square_as_product(
    node: &[Field<'_>],
    initializers: &HashMap<&str, Vec<Field<'_>>>,
    overridable: &HashSet<&str>,
) -> Result<Option<Vec<u8>>, WireError> {
    let op = first(node, 4).and_then(Field::string);
    let domain = first(node, 7).and_then(Field::string).unwrap_or("");
    if op != Some("Pow") || !matches!(domain, "" | "ai.onnx") {
        return Ok(None);
    }
    let (inputs, outputs) = (strings(node, 1), strings(node, 2));
    let [x, exponent] = inputs[..] else {
        return Ok(None);
    };
    let [output] = outputs[..] else {
        return Ok(None);
    };
    let Some(tensor) = initializers.get(exponent) else {
        return Ok(None);
    };
    if overridable.contains(exponent) || !is_float_two(tensor)? {
        return Ok(None);
    }
    let name = first(node, 3).and_then(Field::string).unwrap_or(output);
    Ok(Some(node_proto("Mul", name, &[x, x], &[output], &[])))
}

/// Builds the graph's new nodes and initializers.
#[derive(Default)]
struct Additions {
    initializers: Vec<Vec<u8>>,
    names: HashSet<String>,
}

impl Additions {
    fn constant_i64(&mut self, name: String, values: &[i64]) -> String {
        self.constant_i64_dims(name, &[values.len() as i64], values)
    }

    fn constant_i64_dims(&mut self, name: String, dims: &[i64], values: &[i64]) -> String {
        if self.names.insert(name.clone()) {
            let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.initializers
                .push(tensor_proto(&name, DT_INT64, dims, &raw));
        }
        name
    }

    /// A rank-0 int64 (what `Range` and a scalar `Gather` index want).
    fn scalar(&mut self, value: i64) -> String {
        self.constant_i64_dims(format!("{PREFIX}i64_scalar/{value}"), &[], &[value])
    }

    /// `B [K·C, M]` int8 and its zero point, once per weight tensor.
    fn int8_weights(&mut self, weight: &str, w: &U8Tensor, zero_point: u8) -> (String, String) {
        let b_name = format!("{PREFIX}{weight}/int8_kc_by_m");
        let zp_name = format!("{PREFIX}{weight}/int8_zero_point/{zero_point}");
        if self.names.insert(b_name.clone()) {
            let [m, c, k] = [w.dims[0], w.dims[1], w.dims[2]].map(|d| d as usize);
            let mut b = vec![0_u8; m * c * k];
            for (mi, row) in w.data.chunks_exact(c * k).enumerate() {
                for ci in 0..c {
                    for j in 0..k {
                        // u8 − 128 as i8 is the same bit pattern as flipping the top bit.
                        b[(j * c + ci) * m + mi] = row[ci * k + j] ^ 0x80;
                    }
                }
            }
            let dims = [(k * c) as i64, m as i64];
            self.initializers
                .push(tensor_proto(&b_name, DT_INT8, &dims, &b));
        }
        if self.names.insert(zp_name.clone()) {
            self.initializers
                .push(tensor_proto(&zp_name, DT_INT8, &[], &[zero_point ^ 0x80]));
        }
        (b_name, zp_name)
    }

    /// The nodes replacing one convolution, in topological order.
    fn conv_nodes(
        &mut self,
        conv: &Conv<'_>,
        [channels, k]: [i64; 2],
        b: &str,
        zb: &str,
    ) -> Vec<Vec<u8>> {
        let n = &conv.name;
        let perm = || vec![ints_attribute("perm", &[0, 2, 1])];
        let mut nodes = Vec::new();
        let mut current = format!("{n}/channels_last");
        nodes.push(node_proto(
            "Transpose",
            &current,
            &[conv.x],
            &[&current],
            &perm(),
        ));
        if conv.pads != [0, 0] {
            let [p0, p1] = conv.pads;
            let pads = self.constant_i64(format!("{PREFIX}pads/{p0}_{p1}"), &[0, p0, 0, 0, p1, 0]);
            let padded = format!("{n}/padded");
            let inputs = [current.as_str(), &pads, conv.x_zero_point];
            nodes.push(node_proto("Pad", &padded, &inputs, &[&padded], &[]));
            current = padded;
        }
        if k > 1 {
            // Every window at once: row t of the columns is input rows t, t+d, …, t+(k−1)·d,
            // taken by one Gather over a [L', k] table of row numbers. A Slice per tap and a
            // Concat moved the bytes twice, the Concat in k·L' copies of C bytes: measured
            // twice as slow on the model's 128-channel, 11-tap convolutions.
            let shape = format!("{n}/shape");
            nodes.push(node_proto("Shape", &shape, &[&current], &[&shape], &[]));
            let length = format!("{n}/length");
            let time_axis = self.scalar(1);
            let gather_length = [shape.as_str(), &time_axis];
            nodes.push(node_proto(
                "Gather",
                &length,
                &gather_length,
                &[&length],
                &[],
            ));
            let windows = format!("{n}/windows");
            let span = self.scalar((k - 1) * conv.dilation);
            nodes.push(node_proto(
                "Sub",
                &windows,
                &[&length, &span],
                &[&windows],
                &[],
            ));
            let starts = format!("{n}/starts");
            let range = [self.scalar(0), windows, self.scalar(1)];
            let range: Vec<&str> = range.iter().map(String::as_str).collect();
            nodes.push(node_proto("Range", &starts, &range, &[&starts], &[]));
            let column = format!("{n}/starts_column");
            let column_shape = self.constant_i64(format!("{PREFIX}shape/column"), &[-1, 1]);
            let inputs = [starts.as_str(), &column_shape];
            nodes.push(node_proto("Reshape", &column, &inputs, &[&column], &[]));
            let taps: Vec<i64> = (0..k).map(|j| j * conv.dilation).collect();
            let taps = self.constant_i64_dims(
                format!("{PREFIX}taps/{k}_{}", conv.dilation),
                &[1, k],
                &taps,
            );
            let rows = format!("{n}/rows");
            nodes.push(node_proto("Add", &rows, &[&column, &taps], &[&rows], &[]));
            let gathered = format!("{n}/windows_by_tap");
            let axis = vec![int_attribute("axis", 1)];
            let inputs = [current.as_str(), &rows];
            nodes.push(node_proto(
                "Gather",
                &gathered,
                &inputs,
                &[&gathered],
                &axis,
            ));
            let columns = format!("{n}/columns");
            let width = k * channels;
            // 0: the batch dimension as it is.
            let shape =
                self.constant_i64(format!("{PREFIX}shape/columns/{width}"), &[0, -1, width]);
            let inputs = [gathered.as_str(), &shape];
            nodes.push(node_proto("Reshape", &columns, &inputs, &[&columns], &[]));
            current = columns;
        }
        let product = format!("{n}/product");
        let inputs = [current.as_str(), b, conv.x_zero_point, zb];
        nodes.push(node_proto(
            "MatMulInteger",
            &product,
            &inputs,
            &[&product],
            &[],
        ));
        let back = format!("{n}/channels_first");
        nodes.push(node_proto(
            "Transpose",
            &back,
            &[&product],
            &[conv.output],
            &perm(),
        ));
        nodes
    }
}

/// Names of the graph's value infos numbered `number`: inputs (11) or outputs (12).
fn value_info_names<'a>(graph: &[Field<'a>], number: u32) -> Result<Vec<&'a str>, WireError> {
    let mut names = Vec::new();
    for f in graph.iter().filter(|f| f.number == number) {
        let info = fields(f.bytes().unwrap_or_default())?;
        names.extend(first(&info, 1).and_then(Field::string));
    }
    Ok(names)
}

/// Values known to be uint8: outputs 0 and 2 of `DynamicQuantizeLinear` (how Kokoro feeds its
/// convolutions), and graph inputs or value infos declared uint8 (uint8 initializers are added
/// by the caller). The rewrite's exactness argument is about unsigned activations, so a
/// convolution over anything else is kept.
fn uint8_values<'a>(
    graph: &[Field<'a>],
    nodes: &[Vec<Field<'a>>],
) -> Result<HashSet<&'a str>, WireError> {
    let mut names = HashSet::new();
    for node in nodes {
        if node
            .iter()
            .any(|f| f.number == 4 && f.string() == Some("DynamicQuantizeLinear"))
        {
            let outputs = strings(node, 2);
            names.extend(
                [outputs.first(), outputs.get(2)]
                    .into_iter()
                    .flatten()
                    .copied(),
            );
        }
    }
    for f in graph.iter().filter(|f| matches!(f.number, 11 | 13)) {
        let info = fields(f.bytes().unwrap_or_default())?;
        let name = first(&info, 1).and_then(Field::string);
        let elem_type = match first(&info, 2).and_then(Field::bytes) {
            Some(ty) => match first(&fields(ty)?, 1).and_then(Field::bytes) {
                Some(tensor) => first(&fields(tensor)?, 1).and_then(Field::varint),
                None => None,
            },
            None => None,
        };
        if let (Some(name), Some(DT_UINT8)) = (name, elem_type) {
            names.insert(name);
        }
    }
    Ok(names)
}

fn default_opset(model: &[Field<'_>]) -> Result<Option<u64>, WireError> {
    for f in model.iter().filter(|f| f.number == 8) {
        let opset = fields(f.bytes().unwrap_or_default())?;
        let domain = first(&opset, 1).and_then(Field::string).unwrap_or("");
        if matches!(domain, "" | "ai.onnx") {
            return Ok(first(&opset, 2).and_then(Field::varint));
        }
    }
    Ok(None)
}

/// Rewrites every plain `ConvInteger` of the main graph (see the module docs); everything else
/// in the model is copied unchanged. Returns the new model and what changed.
pub fn rewrite_graph(model: &[u8]) -> Result<(Vec<u8>, RewriteReport), RewriteError> {
    let model_fields = fields(model)?;
    let graph_field = first(&model_fields, 7).ok_or(RewriteError::NoGraph)?;
    let graph = fields(graph_field.bytes().ok_or(RewriteError::NoGraph)?)?;
    if default_opset(&model_fields)?.is_none_or(|v| v < MIN_OPSET) {
        return Ok((model.to_vec(), RewriteReport::default()));
    }
    let mut initializers: HashMap<&str, Vec<Field<'_>>> = HashMap::new();
    // Which graph field holds which initializer, to leave dropped ones out when writing.
    let mut initializer_at: HashMap<usize, &str> = HashMap::new();
    for (index, f) in graph.iter().enumerate().filter(|(_, f)| f.number == 5) {
        let tensor = fields(f.bytes().unwrap_or_default())?;
        if let Some(name) = first(&tensor, 8).and_then(Field::string) {
            initializers.insert(name, tensor);
            initializer_at.insert(index, name);
        }
    }
    let nodes: Vec<Vec<Field<'_>>> = graph
        .iter()
        .filter(|f| f.number == 1)
        .map(|f| fields(f.bytes().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    let names_taken = initializers.keys().copied().chain(
        nodes
            .iter()
            .flatten()
            .filter(|f| matches!(f.number, 2 | 3))
            .filter_map(Field::string),
    );
    if names_taken.into_iter().any(|n| n.starts_with(PREFIX)) {
        return Err(RewriteError::NameClash);
    }
    // How often each name is read (node inputs and graph outputs), to drop weights that only
    // the rewritten convolutions read. A node with a subgraph may read any name: keep all then.
    let mut reads: HashMap<&str, usize> = HashMap::new();
    let mut has_subgraphs = false;
    for node in &nodes {
        for f in node {
            match (f.number, f.value) {
                (1, Value::Bytes(_)) => *reads.entry(f.string().unwrap_or("")).or_default() += 1,
                (5, Value::Bytes(attr)) => {
                    has_subgraphs |= fields(attr)?.iter().any(|a| matches!(a.number, 6 | 11));
                }
                _ => {}
            }
        }
    }
    for name in value_info_names(&graph, 12)? {
        *reads.entry(name).or_default() += 1;
    }

    // A weight listed among the graph inputs may be overridden at run time.
    let overridable: HashSet<&str> = value_info_names(&graph, 11)?.into_iter().collect();
    let mut unsigned = uint8_values(&graph, &nodes)?;
    unsigned.extend(initializers.iter().filter_map(|(name, t)| {
        let data_type = first(t, 2).and_then(Field::varint);
        (data_type == Some(DT_UINT8)).then_some(*name)
    }));

    let mut report = RewriteReport::default();
    let mut additions = Additions::default();
    let mut replaced: HashMap<usize, Vec<Vec<u8>>> = HashMap::new();
    let mut rewritten_reads: HashMap<&str, usize> = HashMap::new();
    for (index, node) in nodes.iter().enumerate() {
        if let Some(product) = square_as_product(node, &initializers, &overridable)? {
            replaced.insert(index, vec![product]);
            report.squares_as_products += 1;
            continue;
        }
        let is_conv = node
            .iter()
            .any(|f| f.number == 4 && f.string() == Some("ConvInteger"));
        let conv = as_plain_conv(node)?.filter(|c| {
            unsigned.contains(c.x)
                && (c.x_zero_point.is_empty() || unsigned.contains(c.x_zero_point))
                && !overridable.contains(c.weight)
                && !overridable.contains(c.w_zero_point)
        });
        let Some(conv) = conv else {
            report.convs_kept += usize::from(is_conv);
            continue;
        };
        let weight = initializers
            .get(conv.weight)
            .map(|t| u8_tensor(t))
            .transpose()?
            .flatten();
        let zero_point = if conv.w_zero_point.is_empty() {
            Some(0)
        } else {
            let zp = initializers
                .get(conv.w_zero_point)
                .map(|t| u8_tensor(t))
                .transpose()?;
            zp.flatten()
                .filter(|t| t.data.len() == 1)
                .map(|t| t.data[0])
        };
        let (Some(weight), Some(zero_point)) = (weight, zero_point) else {
            report.convs_kept += 1;
            continue;
        };
        if weight.dims.len() != 3
            || weight.dims.iter().any(|d| *d <= 0)
            || conv.kernel.is_some_and(|k| k != weight.dims[2])
        {
            report.convs_kept += 1;
            continue;
        }
        let (b, zb) = additions.int8_weights(conv.weight, &weight, zero_point);
        replaced.insert(
            index,
            additions.conv_nodes(&conv, [weight.dims[1], weight.dims[2]], &b, &zb),
        );
        for name in [conv.weight, conv.w_zero_point] {
            *rewritten_reads.entry(name).or_default() += 1;
        }
        report.convs_rewritten += 1;
    }
    if !report.changed() {
        return Ok((model.to_vec(), report));
    }
    let dropped: HashSet<&str> = rewritten_reads
        .iter()
        .filter(|(name, n)| !has_subgraphs && reads.get(*name) == Some(n))
        .map(|(name, _)| *name)
        .collect();

    let mut g = Writer::default();
    let mut node_index = 0;
    for (index, f) in graph.iter().enumerate() {
        match f.number {
            1 => {
                if let Some(new_nodes) = replaced.get(&node_index) {
                    for n in new_nodes {
                        g.bytes(1, n);
                    }
                } else {
                    g.raw(f);
                }
                node_index += 1;
            }
            5 if initializer_at
                .get(&index)
                .is_some_and(|name| dropped.contains(name)) => {}
            _ => {
                g.raw(f);
            }
        }
    }
    for init in &additions.initializers {
        g.bytes(5, init);
    }
    let graph_bytes = g.finish();
    let mut m = Writer::default();
    for f in &model_fields {
        if f.number == 7 {
            m.bytes(7, &graph_bytes);
        } else {
            m.raw(f);
        }
    }
    Ok((m.finish(), report))
}
