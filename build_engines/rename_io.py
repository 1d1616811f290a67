"""Copy an ONNX model with its single input and output renamed (e.g. image -> FRAMES)."""

import argparse

import onnx


def rename_io(source: str, target: str, input_name: str, output_name: str) -> None:
    """Write `source` to `target` with graph input 0 and output 0 renamed everywhere."""
    model = onnx.load(source)
    graph = model.graph
    renames = {graph.input[0].name: input_name, graph.output[0].name: output_name}
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    graph.input[0].name = input_name
    graph.output[0].name = output_name
    onnx.checker.check_model(model)
    onnx.save(model, target)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--input", default="FRAMES")
    parser.add_argument("--output", default="EMBEDDINGS")
    args = parser.parse_args()
    rename_io(args.source, args.target, args.input, args.output)
