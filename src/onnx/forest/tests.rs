use prost::Message;

use super::*;
use crate::detect::{MAX_FEATURES, average_path_length};
use crate::proto::onnx::{AttributeProto, GraphProto, ModelProto, TensorProto, data_type};
use crate::proto::onnx::{
    Dimension, OperatorSetIdProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
    attribute_type,
};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/isolation_forest.onnx");

fn shipped() -> Vec<u8> {
    std::fs::read(SHIPPED).expect("models/isolation_forest.onnx")
}

fn onnx_err(bytes: &[u8]) -> String {
    match read(bytes) {
        Ok(f) => panic!("expected an error, got a forest of {} trees", f.n_trees()),
        Err(ForestError::Onnx(m)) => m,
        Err(e) => panic!("expected ForestError::Onnx, got {e:?}"),
    }
}

/// Decodes the shipped model, applies `edit`, re-encodes and imports it.
fn edited(edit: impl FnOnce(&mut GraphProto)) -> Result<Forest, ForestError> {
    let mut m = ModelProto::decode(shipped().as_slice()).unwrap();
    edit(m.graph.as_mut().unwrap());
    read(&m.encode_to_vec())
}

fn node_mut<'a>(g: &'a mut GraphProto, name: &str) -> &'a mut NodeProto {
    g.node.iter_mut().find(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
}

fn attr_mut<'a>(n: &'a mut NodeProto, name: &str) -> &'a mut AttributeProto {
    n.attribute.iter_mut().find(|a| a.name == name).unwrap()
}

#[test]
fn shipped_model_imports_with_its_shape_and_names() {
    let (f, info) = read_with_info(&shipped()).unwrap();
    assert_eq!((f.n_trees(), f.n_features(), f.sample_size()), (100, 7, 256));
    assert_eq!(info.input_name, "input");
    assert_eq!(info.score_output.as_deref(), Some("score_samples"));
    assert_eq!(info.producer, "skl2onnx 1.20.0");
    // A standardised all-mean vector is ordinary; one 8σ out in every feature is not.
    let typical = f.score(&[0.0; 7]).unwrap();
    let outlier = f.score(&[8.0; 7]).unwrap();
    assert!(typical < 0.5 && outlier > 0.7, "typical {typical}, outlier {outlier}");
}

#[test]
fn garbage_and_truncated_bytes_are_errors() {
    for bytes in [&b""[..], b"\x00", b"not an onnx model at all", &[0xff; 64]] {
        let m = onnx_err(bytes);
        assert!(m.contains("expected an ONNX ModelProto"), "{m}");
    }
    let bytes = shipped();
    for cut in [1, 7, 100, 4096, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        // Never a panic; usually a decode error, at worst a model missing its pieces.
        assert!(read(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let bytes = shipped();
    let mut rng = crate::rng::Rng::new(11);
    for _ in 0..24 {
        let mut b = bytes.clone();
        let at = rng.below(b.len() as u64) as usize;
        b[at] ^= 1 << rng.below(8);
        // Either outcome is fine; reaching here without a panic is the test.
        let _ = read(&b);
    }
}

/// A valid model computing `y = x + x`: no trees.
fn model_without_trees() -> ModelProto {
    let value = |name: &str| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: vec![
                        Dimension { dim_value: None, dim_param: Some("batch".into()) },
                        Dimension { dim_value: Some(3), dim_param: None },
                    ],
                }),
            }),
        }),
    };
    let add = NodeProto {
        input: vec!["x".into(), "x".into()],
        output: vec!["y".into()],
        name: "add".into(),
        op_type: "Add".into(),
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        producer_name: "test".into(),
        graph: Some(GraphProto {
            node: vec![add],
            name: "no_trees".into(),
            input: vec![value("x")],
            output: vec![value("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn model_without_trees_is_an_error_naming_its_ops() {
    let m = onnx_err(&model_without_trees().encode_to_vec());
    assert_eq!(m, "expected ai.onnx.ml TreeEnsembleRegressor nodes, found none (ops Add)");
    let mut huge = model_without_trees();
    let set = |m: &mut ModelProto, dim: Vec<Dimension>| {
        let x = &mut m.graph.as_mut().unwrap().input[0];
        x.r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().shape.as_mut().unwrap().dim = dim;
    };
    let batch = Dimension { dim_value: None, dim_param: Some("batch".into()) };
    set(&mut huge, vec![batch.clone(), Dimension { dim_value: Some(1 << 40), dim_param: None }]);
    let m = onnx_err(&huge.encode_to_vec());
    assert_eq!(
        m,
        format!("expected at most {MAX_FEATURES} features, found graph input 'x' with 1099511627776")
    );
    set(&mut huge, vec![batch]);
    let m = onnx_err(&huge.encode_to_vec());
    assert_eq!(
        m,
        "expected graph input 'x' of shape [batch, n_features] with a fixed n_features, found [batch]"
    );
    let m = onnx_err(&ModelProto { graph: None, ..model_without_trees() }.encode_to_vec());
    assert_eq!(m, "expected an ONNX ModelProto with a graph, found none");
}

#[test]
fn unsupported_or_inconsistent_graphs_say_what_they_found() {
    let e = edited(|g| {
        let modes = attr_mut(node_mut(g, "node_sample3_TreeEnsembleRegressor"), "nodes_modes");
        modes.strings[0] = b"BRANCH_LT".to_vec();
    });
    assert_eq!(
        e,
        Err(err(
            "tree 33 ('node_sample3_TreeEnsembleRegressor'): node 0: mode BRANCH_LT not supported (scikit-learn trees export BRANCH_LEQ and LEAF)"
        ))
    );

    // Drop a leaf's key from the sample-count encoder of tree 5.
    let e = edited(|g| {
        let enc = node_mut(g, "node_sample5_LabelEncoder");
        let keys = attr_mut(enc, "keys_int64s");
        let leaf = keys.ints.remove(0);
        attr_mut(enc, "values_floats").floats.remove(0);
        assert!(leaf > 0);
    })
    .unwrap_err()
    .to_string();
    let expected = "ONNX isolation forest: tree 55 ('node_sample5_TreeEnsembleRegressor'): leaf 6 (output 6) \
                    has no entry in LabelEncoder 'node_sample5_LabelEncoder'";
    assert_eq!(e, expected);

    // A depth encoder that no longer matches the tree structure.
    let e = edited(|g| {
        let enc = node_mut(g, "path_length7_LabelEncoder");
        attr_mut(enc, "values_floats").floats[0] += 1.0;
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("tree 77 ('node_sample7_TreeEnsembleRegressor'): expected one LabelEncoder to map every leaf to its depth + 1"), "{e}");

    // A normaliser for ψ = 128 contradicts the 256 samples in every tree.
    let e = edited(|g| {
        let k = g.initializer.iter_mut().find(|t| t.name == "dec_Divcst").unwrap();
        let c = (100.0 * average_path_length(128.0)) as f32;
        k.raw_data.clear();
        k.float_data = vec![c];
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("tree 0 ('node_sample0_TreeEnsembleRegressor'): its leaves hold 256 training samples")
            && e.contains("implies ψ = 128"),
        "{e}"
    );

    // Feature indices must fit the input.
    let e = edited(|g| {
        let t = attr_mut(node_mut(g, "node_sample0_TreeEnsembleRegressor"), "nodes_featureids");
        t.ints[0] = 7;
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(
            "tree 0 ('node_sample0_TreeEnsembleRegressor'): node 0: feature 7 out of range (7 features in)"
        ),
        "{e}"
    );

    let e = edited(|g| {
        let n = node_mut(g, "node_sample0_TreeEnsembleRegressor");
        n.attribute.retain(|a| a.name != "nodes_values");
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("tree 0 ('node_sample0_TreeEnsembleRegressor'): expected nodes_values or nodes_values_as_tensor, found neither"), "{e}");
}

#[test]
fn thresholds_as_tensors_and_constant_nodes_are_read_too() {
    // ai.onnx.ml opset 3 allows double thresholds as nodes_values_as_tensor.
    let plain = read(&shipped()).unwrap();
    let f = edited(|g| {
        for n in g.node.iter_mut().filter(|n| n.op_type == "TreeEnsembleRegressor") {
            let i = n.attribute.iter().position(|a| a.name == "nodes_values").unwrap();
            let values = n.attribute.remove(i).floats;
            n.attribute.push(AttributeProto {
                name: "nodes_values_as_tensor".into(),
                r#type: attribute_type::TENSOR,
                t: Some(TensorProto {
                    dims: vec![values.len() as i64],
                    data_type: data_type::DOUBLE,
                    double_data: values.iter().map(|&v| v as f64).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        // The normaliser as a Constant node instead of an initializer.
        let i = g.initializer.iter().position(|t| t.name == "dec_Divcst").unwrap();
        let k = g.initializer.remove(i);
        g.node.insert(
            0,
            NodeProto {
                output: vec!["dec_Divcst".into()],
                op_type: "Constant".into(),
                attribute: vec![AttributeProto {
                    name: "value".into(),
                    r#type: attribute_type::TENSOR,
                    t: Some(k),
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
    })
    .unwrap();
    assert_eq!(f, plain);
}
