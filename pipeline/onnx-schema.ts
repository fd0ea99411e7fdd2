import { createRequire } from 'node:module';
import type protobuf from 'protobufjs/light.js';

/**
 * The part of ONNX's protobuf schema (`onnx.proto`, package `onnx`) that a streamgrad
 * export writes, as a protobufjs JSON descriptor: a model, its graph, nodes with integer
 * attributes, tensors (as little-endian `raw_data`), typed inputs and outputs, operator
 * set imports and metadata. Message and field names and numbers are those of the ONNX IR
 * specification (IR version 7, the `ModelProto` … `StringStringEntryProto` messages);
 * fields streamgrad never writes are left out, which protobuf allows: a reader sees them
 * as absent. Written here rather than parsed from the `.proto` text at run time so that
 * the light protobufjs build (no parser) is enough.
 */
const ONNX_DESCRIPTOR = {
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            irVersion: { type: 'int64', id: 1 },
            opsetImport: { rule: 'repeated', type: 'OperatorSetIdProto', id: 8 },
            producerName: { type: 'string', id: 2 },
            producerVersion: { type: 'string', id: 3 },
            domain: { type: 'string', id: 4 },
            modelVersion: { type: 'int64', id: 5 },
            docString: { type: 'string', id: 6 },
            graph: { type: 'GraphProto', id: 7 },
            metadataProps: { rule: 'repeated', type: 'StringStringEntryProto', id: 14 },
          },
        },
        OperatorSetIdProto: {
          fields: {
            domain: { type: 'string', id: 1 },
            version: { type: 'int64', id: 2 },
          },
        },
        StringStringEntryProto: {
          fields: {
            key: { type: 'string', id: 1 },
            value: { type: 'string', id: 2 },
          },
        },
        GraphProto: {
          fields: {
            node: { rule: 'repeated', type: 'NodeProto', id: 1 },
            name: { type: 'string', id: 2 },
            initializer: { rule: 'repeated', type: 'TensorProto', id: 5 },
            docString: { type: 'string', id: 10 },
            input: { rule: 'repeated', type: 'ValueInfoProto', id: 11 },
            output: { rule: 'repeated', type: 'ValueInfoProto', id: 12 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: 'repeated', type: 'string', id: 1 },
            output: { rule: 'repeated', type: 'string', id: 2 },
            name: { type: 'string', id: 3 },
            opType: { type: 'string', id: 4 },
            domain: { type: 'string', id: 7 },
            attribute: { rule: 'repeated', type: 'AttributeProto', id: 5 },
            docString: { type: 'string', id: 6 },
          },
        },
        AttributeProto: {
          fields: {
            name: { type: 'string', id: 1 },
            type: { type: 'int32', id: 20 },
            f: { type: 'float', id: 2 },
            i: { type: 'int64', id: 3 },
            s: { type: 'bytes', id: 4 },
            ints: { rule: 'repeated', type: 'int64', id: 8 },
          },
        },
        TensorProto: {
          fields: {
            dims: { rule: 'repeated', type: 'int64', id: 1 },
            dataType: { type: 'int32', id: 2 },
            name: { type: 'string', id: 8 },
            rawData: { type: 'bytes', id: 9 },
            docString: { type: 'string', id: 12 },
          },
        },
        ValueInfoProto: {
          fields: {
            name: { type: 'string', id: 1 },
            type: { type: 'TypeProto', id: 2 },
            docString: { type: 'string', id: 3 },
          },
        },
        TypeProto: {
          fields: {
            tensorType: { type: 'TypeProtoTensor', id: 1 },
          },
        },
        // TypeProto.Tensor in the .proto (a nested message); the name on the wire does not matter
        TypeProtoTensor: {
          fields: {
            elemType: { type: 'int32', id: 1 },
            shape: { type: 'TensorShapeProto', id: 2 },
          },
        },
        TensorShapeProto: {
          fields: {
            dim: { rule: 'repeated', type: 'TensorShapeDimension', id: 1 },
          },
        },
        // TensorShapeProto.Dimension: a fixed size or a named (symbolic) one
        TensorShapeDimension: {
          oneofs: { value: { oneof: ['dimValue', 'dimParam'] } },
          fields: {
            dimValue: { type: 'int64', id: 1 },
            dimParam: { type: 'string', id: 2 },
          },
        },
      },
    },
  },
};

/** `TensorProto.DataType` values streamgrad writes. */
export const ONNX_DATA_TYPE = { FLOAT: 1, INT64: 7, DOUBLE: 11 } as const;
/** `AttributeProto.AttributeType` values streamgrad writes. */
export const ONNX_ATTRIBUTE_TYPE = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;

let modelType: protobuf.Type | undefined;

/**
 * The protobufjs type of `onnx.ModelProto` (built once): `encode` a plain object with the
 * camelCase field names above to get the bytes of an `.onnx` file, `decode` to read one back.
 *
 * @example const bytes = onnxModelType().encode({ irVersion: 7, graph: { name: 'g' } }).finish();
 */
export function onnxModelType(): protobuf.Type {
  if (modelType === undefined) {
    // loaded on first use, not with streamgrad/node or `inspect`: protobufjs takes a few hundred ms to load on a busy machine
    const { Root } = createRequire(import.meta.url)('protobufjs/light.js') as typeof protobuf;
    modelType = Root.fromJSON(ONNX_DESCRIPTOR).lookupType('onnx.ModelProto');
  }
  return modelType;
}
