"""Issue 17: this service beside the servers users would pick instead (`python -m bench.peers`).

The peer servers here (plain_fastapi.py, bentoml_service.py, litserve_server.py, onnx_decoder.py)
run in their own virtual environments and are never imported by this package; launch.py starts
them, compare.py measures, check.py verifies their answers.
"""
