//! Builders of the few ONNX messages the rewrite adds (field numbers from onnx.proto).

use super::wire::Writer;

pub const DT_FLOAT: u64 = 1;
pub const DT_UINT8: u64 = 2;
pub const DT_INT8: u64 = 3;
pub const DT_INT32: u64 = 6;
pub const DT_INT64: u64 = 7;
const ATTR_INT: u64 = 2;
const ATTR_INTS: u64 = 7;

/// A `TensorProto` holding `raw` as its raw data.
pub fn tensor_proto(name: &str, data_type: u64, dims: &[i64], raw: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    for d in dims {
        w.varint(1, *d as u64);
    }
    w.varint(2, data_type).string(8, name).bytes(9, raw);
    w.finish()
}

/// An `AttributeProto` of type INTS.
pub fn ints_attribute(name: &str, values: &[i64]) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(1, name);
    for v in values {
        w.varint(8, *v as u64);
    }
    w.varint(20, ATTR_INTS);
    w.finish()
}

/// An `AttributeProto` of type INT.
pub fn int_attribute(name: &str, value: i64) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(1, name)
        .varint(3, value as u64)
        .varint(20, ATTR_INT);
    w.finish()
}

/// A `NodeProto` of the default domain.
pub fn node_proto(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: &[Vec<u8>],
) -> Vec<u8> {
    let mut w = Writer::default();
    for i in inputs {
        w.string(1, i);
    }
    for o in outputs {
        w.string(2, o);
    }
    w.string(3, name).string(4, op);
    for a in attrs {
        w.bytes(5, a);
    }
    w.finish()
}
