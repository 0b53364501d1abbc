//! Just enough of the protobuf wire format to copy a message's fields
//! through byte for byte.
//!
//! Decoding a whole ONNX model into prost structs and encoding it again
//! loses attributes whose value is zero (`ceil_mode = 0`, `transA = 0`): the
//! generated types cannot tell "zero" from "absent", and OpenCV refuses an
//! attribute with a type but no value. So the folding rewrites only the
//! fields it changes and copies every other field's bytes as they came.
//! prost keeps its own wire helpers private (`doc(hidden)`), hence these few
//! lines.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("truncated protobuf field")]
    Truncated,
    #[error("varint longer than 10 bytes")]
    VarintTooLong,
    #[error("unsupported wire type {0}")]
    WireType(u8),
}

pub const WIRE_VARINT: u8 = 0;
pub const WIRE_LENGTH_DELIMITED: u8 = 2;

/// One field of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub number: u32,
    pub wire_type: u8,
    /// The whole field as encoded, key included.
    pub raw: &'a [u8],
    /// The value: the content of a length-delimited field, the bytes of
    /// any other.
    pub payload: &'a [u8],
}

fn read_varint(buf: &[u8], at: &mut usize) -> Result<u64, WireError> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*at).ok_or(WireError::Truncated)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::VarintTooLong)
}

/// The value of a varint field's payload.
pub fn varint_value(payload: &[u8]) -> Result<u64, WireError> {
    read_varint(payload, &mut 0)
}

pub fn write_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Splits a message into its fields, in order.
pub fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, WireError> {
    let mut fields = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let start = at;
        let key = read_varint(buf, &mut at)?;
        let wire_type = (key & 7) as u8;
        let number = (key >> 3) as u32;
        let payload_start;
        match wire_type {
            WIRE_VARINT => {
                payload_start = at;
                read_varint(buf, &mut at)?;
            }
            1 => {
                payload_start = at;
                at += 8;
            }
            WIRE_LENGTH_DELIMITED => {
                let length = read_varint(buf, &mut at)?;
                payload_start = at;
                at = at
                    .checked_add(usize::try_from(length).map_err(|_| WireError::Truncated)?)
                    .ok_or(WireError::Truncated)?;
            }
            5 => {
                payload_start = at;
                at += 4;
            }
            other => return Err(WireError::WireType(other)),
        }
        if at > buf.len() {
            return Err(WireError::Truncated);
        }
        fields.push(Field {
            number,
            wire_type,
            raw: &buf[start..at],
            payload: &buf[payload_start..at],
        });
    }
    Ok(fields)
}

pub fn write_length_delimited(number: u32, payload: &[u8], out: &mut Vec<u8>) {
    write_varint(
        u64::from(number) << 3 | u64::from(WIRE_LENGTH_DELIMITED),
        out,
    );
    write_varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

pub fn write_varint_field(number: u32, value: u64, out: &mut Vec<u8>) {
    write_varint(u64::from(number) << 3 | u64::from(WIRE_VARINT), out);
    write_varint(value, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_fields_byte_for_byte() {
        let mut message = Vec::new();
        write_varint_field(1, 300, &mut message);
        write_length_delimited(7, b"graph", &mut message);
        write_varint_field(3, 0, &mut message);
        let parsed = fields(&message).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            (parsed[0].number, parsed[0].payload),
            (1, &[0xac, 0x02][..])
        );
        assert_eq!((parsed[1].number, parsed[1].payload), (7, &b"graph"[..]));
        assert_eq!(
            parsed[2].raw,
            &[0x18, 0x00][..],
            "an explicit zero survives"
        );
        let rebuilt: Vec<u8> = parsed.iter().flat_map(|f| f.raw.iter().copied()).collect();
        assert_eq!(rebuilt, message);
    }

    #[test]
    fn truncation_is_an_error() {
        let mut message = Vec::new();
        write_length_delimited(7, b"graph", &mut message);
        assert_eq!(
            fields(&message[..message.len() - 1]),
            Err(WireError::Truncated)
        );
        assert_eq!(fields(&[0x80]), Err(WireError::Truncated));
    }
}
