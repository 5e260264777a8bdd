"""Errors of the Open Inference Protocol layer; ``api.oip.routes`` answers them.

GatewayError (api.exceptions)
└── OipError                 -- an error only the v2 protocol has                  (400)
    ├── InvalidInferRequest  -- body, header, tensor, datatype or parameter wrong  (400)
    └── UnmappableField      -- a field of the model's messages has no tensor form (400)

Every other gateway error keeps its meaning on v2 paths (unknown model 404, no live worker 503,
timeout 504, ...); see ``api.oip.routes.oip_error``.
"""

from api.exceptions import GatewayError


class OipError(GatewayError):
    """Base of the errors only the v2 protocol raises; ``status`` is the HTTP status."""

    code = "oip_error"
    status = 400


class InvalidInferRequest(OipError):
    """The request does not fit the protocol or the model's tensors; ``field`` names the tensor
    or parameter when one is at fault."""

    code = "invalid_infer_request"


class UnmappableField(OipError):
    """A field of the model's request or response message has no tensor mapping (for example a
    repeated message); ``field`` is its dotted path."""

    code = "unmappable_field"
