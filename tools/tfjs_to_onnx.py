#!/usr/bin/env python3
"""A TensorFlow.js graph model's convolutional part as an ONNX model (set-up time, issue 18).

    python tools/tfjs_to_onnx.py MODEL.json OUT.onnx OUTPUT_NODE[,OUTPUT_NODE...]

Reads the graph (``modelTopology``) and the weight shards (``weightsManifest``, float16-quantised
weights widened to float32) of a TensorFlow.js graph model and writes the sub-graph that computes
the named output nodes as ONNX (opset 17), in NCHW layout: input ``input`` (1, C, H, W) float32,
any H and W the network accepts (a bilinear 2x upsampling is written as a scale, not as the
graph's fixed output size). Only the ops of convolutional backbones and heads are supported
(convolutions with their fused bias and activations, depthwise convolutions, elementwise
arithmetic, ReLU/ReLU6/sigmoid, global mean, concat, bilinear resize, max pool); any other op
stops the conversion with its name. The decoding that follows a model's heads (top-k, gathers)
is not converted: the backend does it in numpy. Needs the ``onnx`` package (tools/setup_models.sh
runs it in a throwaway venv under build/); never imports TensorFlow.
"""
import base64
import json
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DT = {'float32': np.float32, 'int32': np.int32, 'float16': np.float16, 'uint8': np.uint8,
      'bool': np.bool_}


def load_weights(model_json: pathlib.Path):
    g = json.loads(model_json.read_text())
    out = {}
    for group in g['weightsManifest']:
        buf = b''.join((model_json.parent / p).read_bytes() for p in group['paths'])
        off = 0
        for w in group['weights']:
            shape = w['shape']
            n = int(np.prod(shape)) if shape else 1
            q = w.get('quantization')
            if q:
                qdt = DT[q['dtype']]
                size = n * np.dtype(qdt).itemsize
                arr = np.frombuffer(buf, qdt, n, off).astype(DT[w['dtype']])
                if 'scale' in q:
                    arr = arr * q['scale'] + q.get('min', 0.0)
            else:
                dt = DT[w['dtype']]
                size = n * np.dtype(dt).itemsize
                arr = np.frombuffer(buf, dt, n, off)
            out[w['name']] = arr.reshape(shape).copy()
            off += size
    return g, out


def s(attr, key):
    return base64.b64decode(attr[key]['s']).decode()


def ints(attr, key):
    return [int(i) for i in attr[key]['list'].get('i', [])]


def convert(model_json, outputs, out_path):
    """Write the ONNX model of ``outputs`` of the graph model ``model_json`` to ``out_path``."""
    model_json = pathlib.Path(model_json)
    g, weights = load_weights(model_json)
    nodes = {n['name']: n for n in g['modelTopology']['node']}
    for n in nodes.values():
        if n['op'] == 'Const' and n['name'] not in weights:
            t = n['attr']['value']['tensor']
            dims = [int(d['size']) for d in t.get('tensorShape', {}).get('dim', [])]
            if 'intVal' in t:
                weights[n['name']] = np.array(t['intVal'], np.int32).reshape(dims or [])
            elif 'floatVal' in t:
                weights[n['name']] = np.array(t['floatVal'], np.float32).reshape(dims or [])
    onodes, inits = [], []
    done = {}

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def const_nchw(ref):
        """A Const operand of an elementwise op in NCHW layout."""
        a = weights[ref].astype(np.float32)
        if a.ndim == 1 and a.size > 1:
            a = a.reshape(1, -1, 1, 1)
        elif a.ndim == 4:
            a = a.transpose(0, 3, 1, 2)
        return const(ref + '__nchw', a)

    def emit(name):
        if name in done:
            return done[name]
        n = nodes[name]
        op, attr = n['op'], n.get('attr', {})
        ins = [i for i in n.get('input', []) if not i.startswith('^')]
        if op == 'Placeholder':
            dims = [int(d['size']) for d in attr['shape']['shape']['dim']]
            inp = helper.make_tensor_value_info('input', TensorProto.FLOAT,
                                                ['n', dims[3], 'h', 'w'])
            graph_inputs.append(inp)
            done[name] = 'input'
            return 'input'

        def x(i):
            ref = ins[i]
            base = ref.split(':')[0]
            if nodes[base]['op'] == 'Const':
                return const_nchw(base)
            return emit(base)
        o = name
        if op in ('_FusedConv2D', 'Conv2D', 'FusedDepthwiseConv2dNative',
                  'DepthwiseConv2dNative'):
            w = weights[ins[1]].astype(np.float32)     # HWIO or HW C M
            kh, kw = w.shape[:2]
            if 'Depthwise' in op:
                c, m = w.shape[2], w.shape[3]
                wt = w.reshape(kh, kw, 1, c * m).transpose(3, 2, 0, 1)
                group = c
            else:
                wt = w.transpose(3, 2, 0, 1)
                group = 1
            args = [x(0), const(ins[1] + '__oihw', wt)]
            fused = [base64.b64decode(v).decode() for v in
                     attr.get('fused_ops', {}).get('list', {}).get('s', [])]
            if 'BiasAdd' in fused:
                args.append(const(ins[2] + '__b', weights[ins[2]].astype(np.float32)))
            strides = ints(attr, 'strides')[1:3]
            dil = ints(attr, 'dilations')[1:3] if 'dilations' in attr else [1, 1]
            pad = s(attr, 'padding')
            kw_ = dict(kernel_shape=[kh, kw], strides=strides, dilations=dil, group=group)
            if pad == 'SAME':
                kw_['auto_pad'] = 'SAME_UPPER'
            elif pad == 'VALID':
                kw_['pads'] = [0, 0, 0, 0]
            else:
                raise NotImplementedError(pad)
            acts = [f for f in fused if f != 'BiasAdd']
            co = o if not acts else o + '__conv'
            onodes.append(helper.make_node('Conv', args, [co], name=o + '__c', **kw_))
            for a in acts:
                if a == 'Relu':
                    onodes.append(helper.make_node('Relu', [co], [o]))
                elif a == 'Relu6':
                    onodes.append(helper.make_node('Clip', [co, const(o + '__0', np.float32(0)),
                                                            const(o + '__6', np.float32(6))], [o]))
                elif a == 'LeakyRelu':
                    onodes.append(helper.make_node('LeakyRelu', [co], [o],
                                                   alpha=float(attr['leakyrelu_alpha']['f'])))
                else:
                    raise NotImplementedError(a)
        elif op in ('Add', 'AddV2', 'Mul', 'Sub', 'RealDiv', 'Maximum', 'Minimum'):
            m = {'Add': 'Add', 'AddV2': 'Add', 'Mul': 'Mul', 'Sub': 'Sub', 'RealDiv': 'Div',
                 'Maximum': 'Max', 'Minimum': 'Min'}[op]
            onodes.append(helper.make_node(m, [x(0), x(1)], [o]))
        elif op == 'Relu':
            onodes.append(helper.make_node('Relu', [x(0)], [o]))
        elif op == 'Relu6':
            onodes.append(helper.make_node('Clip', [x(0), const(o + '__0', np.float32(0)),
                                                    const(o + '__6', np.float32(6))], [o]))
        elif op == 'Sigmoid':
            onodes.append(helper.make_node('Sigmoid', [x(0)], [o]))
        elif op == 'Identity':
            onodes.append(helper.make_node('Identity', [x(0)], [o]))
        elif op == 'Mean':
            ax = [int(v) for v in np.ravel(weights[ins[1]])]
            assert sorted(ax) == [1, 2], ax
            onodes.append(helper.make_node('GlobalAveragePool', [x(0)], [o]))
        elif op == 'ConcatV2':
            ax = int(weights[ins[-1]])
            assert ax in (3, -1), ax
            onodes.append(helper.make_node('Concat', [x(i) for i in range(len(ins) - 1)], [o],
                                           axis=1))
        elif op == 'ResizeBilinear':
            ac = attr.get('align_corners', {}).get('b', False)
            hp = attr.get('half_pixel_centers', {}).get('b', False)
            mode = 'align_corners' if ac else ('half_pixel' if hp else 'asymmetric')
            # fixed output size in the graph: use the scale factor instead (any input size)
            onodes.append(helper.make_node(
                'Resize', [x(0), '', const(o + '__scales', np.array([1, 1, 2, 2], np.float32))],
                [o], mode='linear', coordinate_transformation_mode=mode))
        elif op == 'MaxPool':
            k = ints(attr, 'ksize')[1:3]
            st = ints(attr, 'strides')[1:3]
            onodes.append(helper.make_node('MaxPool', [x(0)], [o], kernel_shape=k, strides=st,
                                           auto_pad='SAME_UPPER'))
        else:
            raise NotImplementedError(f'{op} ({name})')
        done[name] = o
        return o

    graph_inputs = []
    outs = []
    for name in outputs:
        emit(name)
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ['n', 'c', 'h', 'w']))
    graph = helper.make_graph(onodes, 'tfjs', graph_inputs, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out_path)
    return model


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print(__doc__.split('\n\n')[1], file=sys.stderr)
        return 2
    convert(argv[0], argv[2].split(','), argv[1])
    return 0


if __name__ == '__main__':
    sys.exit(main())
