//! The subset of `onnx.proto` (ONNX IR, `syntax = "proto2"`) needed to read tree ensembles
//! out of a model: the graph, its nodes and attributes, constant tensors and the input shape.
//!
//! Hand-written prost messages instead of generated ones: the full schema is ~900 lines and
//! the service reads a dozen fields. Field numbers are those of the official `onnx/onnx.proto`
//! (checked against the copy shipped with the `onnx` 1.23 Python package); every field not
//! listed here (subgraphs, functions, metadata, doc strings, ...) is skipped on decode.
//!
//! ```text
//! ModelProto         { int64 ir_version = 1; string producer_name = 2; string producer_version = 3;
//!                      GraphProto graph = 7; repeated OperatorSetIdProto opset_import = 8; }
//! OperatorSetIdProto { string domain = 1; int64 version = 2; }
//! GraphProto         { repeated NodeProto node = 1; string name = 2;
//!                      repeated TensorProto initializer = 5;
//!                      repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12; }
//! NodeProto          { repeated string input = 1; repeated string output = 2; string name = 3;
//!                      string op_type = 4; repeated AttributeProto attribute = 5; string domain = 7; }
//! AttributeProto     { string name = 1; float f = 2; int64 i = 3; bytes s = 4; TensorProto t = 5;
//!                      repeated float floats = 7; repeated int64 ints = 8;
//!                      repeated bytes strings = 9; AttributeType type = 20; }
//! TensorProto        { repeated int64 dims = 1; int32 data_type = 2;
//!                      repeated float float_data = 4 [packed]; repeated int32 int32_data = 5 [packed];
//!                      repeated int64 int64_data = 7 [packed]; string name = 8; bytes raw_data = 9;
//!                      repeated double double_data = 10 [packed]; int32 data_location = 14; }
//! ValueInfoProto     { string name = 1; TypeProto type = 2; }
//! TypeProto          { oneof value { TypeProto.Tensor tensor_type = 1; ... } }
//! TypeProto.Tensor   { int32 elem_type = 1; TensorShapeProto shape = 2; }
//! TensorShapeProto   { repeated Dimension dim = 1; }
//! Dimension          { oneof value { int64 dim_value = 1; string dim_param = 2; } }
//! ```
//!
//! proto2 repeated scalars are unpacked unless marked `[packed = true]`; prost decodes both
//! forms, and the `packed = "false"` below only makes the encoder (used by tests to build
//! models) write what an ONNX writer would. A `oneof` is plain optional fields on the wire,
//! so `TypeProto`'s and `Dimension`'s are declared as such.

/// `onnx.ModelProto`: the top-level message of a `.onnx` file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// IR version of the file format.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// Operator sets the graph uses, e.g. `""` 17 and `ai.onnx.ml` 3.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// Tool that wrote the model, e.g. `skl2onnx`.
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// Version of that tool.
    #[prost(string, tag = "3")]
    pub producer_version: String,
    /// The computation.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

/// `onnx.OperatorSetIdProto`: one imported operator set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// Operator domain; empty (or `ai.onnx`) for the default one.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// Opset version.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// `onnx.GraphProto`: nodes in topological order plus constants and the interface.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// Operator nodes.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// Graph name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Named constant tensors.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Graph inputs (before IR 4 these may also list initializers).
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// Graph outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// `onnx.NodeProto`: one operator application.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// Input value names; an empty name is an omitted optional input.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Output value names.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Node name (informational).
    #[prost(string, tag = "3")]
    pub name: String,
    /// Operator, e.g. `TreeEnsembleRegressor`.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// Operator domain, e.g. `ai.onnx.ml`; empty for the default one.
    #[prost(string, tag = "7")]
    pub domain: String,
    /// Operator attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `onnx.AttributeProto.AttributeType` values (the `type` field).
pub mod attribute_type {
    /// `f`.
    pub const FLOAT: i32 = 1;
    /// `i`.
    pub const INT: i32 = 2;
    /// `s`.
    pub const STRING: i32 = 3;
    /// `t`.
    pub const TENSOR: i32 = 4;
    /// `floats`.
    pub const FLOATS: i32 = 6;
    /// `ints`.
    pub const INTS: i32 = 7;
    /// `strings`.
    pub const STRINGS: i32 = 8;
}

/// `onnx.AttributeProto`: a named attribute; `type` says which value field is used.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// Attribute name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Which value field is set ([`attribute_type`]).
    #[prost(int32, tag = "20")]
    pub r#type: i32,
    /// FLOAT value.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// INT value.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// STRING value (UTF-8 bytes).
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    /// TENSOR value.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// FLOATS value.
    #[prost(float, repeated, packed = "false", tag = "7")]
    pub floats: Vec<f32>,
    /// INTS value.
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
    /// STRINGS value.
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
}

/// `onnx.TensorProto.DataType` values used here.
pub mod data_type {
    /// f32.
    pub const FLOAT: i32 = 1;
    /// i32.
    pub const INT32: i32 = 6;
    /// i64.
    pub const INT64: i32 = 7;
    /// f64.
    pub const DOUBLE: i32 = 11;
}

/// `onnx.TensorProto`: a constant tensor, either in the typed `*_data` field or little-endian
/// in `raw_data`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// Shape.
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    /// Element type ([`data_type`]).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// FLOAT elements.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// INT32 (and smaller integer) elements.
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    /// INT64 elements.
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// Name (initializers are referred to by it).
    #[prost(string, tag = "8")]
    pub name: String,
    /// Elements as little-endian bytes, instead of a typed field.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    /// DOUBLE elements.
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    /// 1 when the data lives in an external file (not supported by readers here).
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// `onnx.ValueInfoProto`: a graph input or output.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// Value name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Type and shape.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `onnx.TypeProto`, tensor types only (the other `oneof` members are skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// Set for tensors.
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
}

/// `onnx.TypeProto.Tensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProtoTensor {
    /// Element type ([`data_type`]).
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    /// Shape, when known.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `onnx.TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Dimensions, outermost first.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `onnx.TensorShapeProto.Dimension`: a fixed size or a symbolic name (e.g. `batch`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// Fixed size.
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    /// Symbolic name.
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}
