"""VAE model-serving microservice: ONNX encoder/decoder graphs behind FastAPI.

Data flows one way: bytes in (imaging) -> validated arrays -> batcher (batching) ->
ONNX session (registry) -> arrays -> bytes out (encoding). The service never imports torch.
"""

__all__ = ["create_app"]


def create_app(*args, **kwargs):  # lazy so `import service` stays cheap
    from service.app import create_app as _create_app

    return _create_app(*args, **kwargs)
