//! Just enough of the protobuf wire format to edit an ONNX model without a schema compiler:
//! a message is read as its fields in order, fields we do not touch are written back byte for
//! byte, so nothing the rewrite does not understand is lost.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("malformed protobuf: {0}")]
pub struct WireError(pub &'static str);

/// One field's payload as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub number: u32,
    pub value: Value<'a>,
    /// The field's bytes on the wire, tag included, for writing it back unchanged.
    pub raw: &'a [u8],
}

impl<'a> Field<'a> {
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn string(&self) -> Option<&'a str> {
        self.bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    pub fn varint(&self) -> Option<u64> {
        match self.value {
            Value::Varint(v) => Some(v),
            _ => None,
        }
    }
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let mut value = 0_u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or(WireError("truncated varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError("varint longer than 10 bytes"))
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, len: usize) -> Result<&'a [u8], WireError> {
    let end = pos
        .checked_add(len)
        .filter(|end| *end <= buf.len())
        .ok_or(WireError("field runs past the end of its message"))?;
    let bytes = &buf[*pos..end];
    *pos = end;
    Ok(bytes)
}

/// The fields of one message, in wire order.
pub fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, WireError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let tag = read_varint(buf, &mut pos)?;
        let number = u32::try_from(tag >> 3).map_err(|_| WireError("field number too large"))?;
        let value = match tag & 7 {
            0 => Value::Varint(read_varint(buf, &mut pos)?),
            1 => Value::Fixed64(
                take(buf, &mut pos, 8)?
                    .try_into()
                    .map_err(|_| WireError("fixed64"))?,
            ),
            2 => {
                let len = usize::try_from(read_varint(buf, &mut pos)?)
                    .map_err(|_| WireError("length too large"))?;
                Value::Bytes(take(buf, &mut pos, len)?)
            }
            5 => Value::Fixed32(
                take(buf, &mut pos, 4)?
                    .try_into()
                    .map_err(|_| WireError("fixed32"))?,
            ),
            _ => {
                return Err(WireError(
                    "unsupported wire type (groups are not used by ONNX)",
                ));
            }
        };
        out.push(Field {
            number,
            value,
            raw: &buf[start..pos],
        });
    }
    Ok(out)
}

/// The first field numbered `number`.
pub fn first<'f, 'a>(fields: &'f [Field<'a>], number: u32) -> Option<&'f Field<'a>> {
    fields.iter().find(|f| f.number == number)
}

/// Every string field numbered `number`, in order.
pub fn strings<'a>(fields: &[Field<'a>], number: u32) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|f| f.number == number)
        .filter_map(Field::string)
        .collect()
}

/// A repeated int64 field, whether written packed (one length-delimited run) or one per tag.
pub fn repeated_i64(fields: &[Field<'_>], number: u32) -> Result<Vec<i64>, WireError> {
    let mut out = Vec::new();
    for f in fields.iter().filter(|f| f.number == number) {
        match f.value {
            // Two's complement, as protobuf encodes negative int64.
            Value::Varint(v) => out.push(v as i64),
            Value::Bytes(packed) => {
                let mut pos = 0;
                while pos < packed.len() {
                    out.push(read_varint(packed, &mut pos)? as i64);
                }
            }
            _ => return Err(WireError("repeated int64 with a fixed-width wire type")),
        }
    }
    Ok(out)
}

/// Writes fields of a message being built.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    fn put_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub fn varint(&mut self, number: u32, v: u64) -> &mut Self {
        self.put_varint(u64::from(number) << 3);
        self.put_varint(v);
        self
    }

    pub fn bytes(&mut self, number: u32, b: &[u8]) -> &mut Self {
        self.put_varint((u64::from(number) << 3) | 2);
        self.put_varint(b.len() as u64);
        self.buf.extend_from_slice(b);
        self
    }

    pub fn string(&mut self, number: u32, s: &str) -> &mut Self {
        self.bytes(number, s.as_bytes())
    }

    /// A field read elsewhere, copied unchanged.
    pub fn raw(&mut self, field: &Field<'_>) -> &mut Self {
        self.buf.extend_from_slice(field.raw);
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_through_the_writer() {
        let mut w = Writer::default();
        w.varint(1, 300)
            .string(2, "ConvInteger")
            .varint(3, (-5_i64) as u64);
        let buf = w.finish();
        let parsed = fields(&buf).expect("parses");
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].varint(), Some(300));
        assert_eq!(parsed[1].string(), Some("ConvInteger"));
        assert_eq!(repeated_i64(&parsed, 3), Ok(vec![-5]));
        let mut copy = Writer::default();
        for f in &parsed {
            copy.raw(f);
        }
        assert_eq!(copy.finish(), buf);
    }

    #[test]
    fn packed_and_unpacked_int64_read_alike() {
        let mut packed = Writer::default();
        packed.put_varint(1);
        packed.put_varint(11);
        let mut w = Writer::default();
        w.bytes(8, &packed.finish()).varint(8, 7);
        let buf = w.finish();
        assert_eq!(
            repeated_i64(&fields(&buf).expect("parses"), 8),
            Ok(vec![1, 11, 7])
        );
    }

    #[test]
    fn truncated_input_is_an_error() {
        let mut w = Writer::default();
        w.string(2, "abcdef");
        let buf = w.finish();
        assert_eq!(
            fields(&buf[..4]),
            Err(WireError("field runs past the end of its message"))
        );
        assert_eq!(fields(&[0x80]), Err(WireError("truncated varint")));
    }
}
