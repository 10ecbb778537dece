"""The Open Inference Protocol v2 (KServe V2 / Triton) beside the service's own API: REST (rest.py)
and gRPC (grpc_server.py) on the same batchers. Each VAE model is two OIP models,
`<name>-encoder` and `<name>-decoder` (tensors.py). docs/api.md "Open Inference Protocol"."""
