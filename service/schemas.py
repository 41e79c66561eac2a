"""Request and response models of the HTTP API (they are the OpenAPI schema at /docs, with examples)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_CODE = "AQAAAAAB..."  # shortened example of a latent code
_PNG = "iVBORw0KGgoAAAANSUhEUgAA..."


class ErrorDetail(BaseModel):
    code: str = Field(examples=["image_undecodable"], description="stable machine-readable code")
    message: str = Field(examples=["image 0: not a PNG, JPEG, WebP or GIF image"])
    request_id: str = Field(examples=["3f2c9a7e0d8b4c1e9f6a5b4c3d2e1f00"])
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class EncodedItem(BaseModel):
    index: int
    shape: list[float] = Field(description="shape (deformation) latent, S values", examples=[[0.51, 0.47]])
    appearance: list[float] = Field(description="appearance (texture) latent, A values", examples=[[0.2, 0.9]])
    shading: list[float] | None = Field(default=None, description="intrinsic models: the shading latent")
    class_probabilities: list[float] | None = Field(
        default=None, description="class-aware models: softmax of the logits"
    )
    predicted_class: int | None = None
    predicted_label: str | None = None
    code: str = Field(
        description="URL-safe code of this item's latents (and class code), for /interpolate and /decode",
        examples=[_CODE],
    )


class EncodeResponse(BaseModel):
    model: str = Field(examples=["mnist"])
    items: list[EncodedItem]


class OutputsItem(BaseModel):
    index: int
    t: float | None = Field(default=None, description="interpolation: position from start (0) to end (1)")
    code: str | None = Field(default=None, description="the latents this item was decoded from")
    outputs: dict[str, dict[str, Any]] = Field(
        description="per output: images {shape, png[, values]}, fields {shape, values}, pictures {png}",
        examples=[
            {
                "reconstruction": {"shape": [1, 32, 32], "png": _PNG},
                "displacement": {"shape": [2, 32, 32], "values": [[[0.0]]]},
            }
        ],
    )


class OutputsResponse(BaseModel):
    model: str
    units: dict[str, Any] = Field(description="what grid and displacement mean: units and channel order")
    items: list[OutputsItem]


class LatentInput(BaseModel):
    """One latent pair: a ``code`` from /encode, or explicit values (plus a class for class-aware models)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    code: str | None = Field(default=None, examples=[_CODE])
    shape: list[float] | None = None
    appearance: list[float] | None = None
    shading: list[float] | None = None
    klass: int | str | None = Field(
        None,
        alias="class",
        description="class index or name (class-aware models); overrides the class carried by a code",
    )


class DecodeRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"latents": [{"code": _CODE}, {"shape": [0.5], "appearance": [0.5], "class": 7}]}]
        },
    )

    latents: list[LatentInput] = Field(min_length=1)


class TensorInfo(BaseModel):
    name: str
    datatype: str = Field(examples=["FP32"])
    shape: list[int] = Field(description="-1: variable (the batch)", examples=[[-1, 1, 32, 32]])


class OipModelMetadata(BaseModel):
    """Model metadata as the Open Inference Protocol (KServe v2) defines it."""

    name: str
    versions: list[str]
    platform: str = Field(examples=["onnxruntime_onnx"])
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]


class ModelMetadata(OipModelMetadata):
    """The protocol's fields (inputs/outputs: the OIP model's tensors) and what this service adds."""

    variant: str
    image_size: int
    channels: int
    latents: dict[str, int]
    class_names: list[str]
    sha256: str
    providers: dict[str, list[str]] = Field(description="per graph: the execution providers really active")
    graphs: dict[str, dict[str, list[TensorInfo]]]
    preprocessing: dict[str, Any]
    warp: dict[str, Any] | None
    provenance: dict[str, Any]
    limits: dict[str, Any]
    outputs_available: list[str]
    decoder_model: str = Field(description="the OIP model that decodes latents (latents in, images out)")


class HealthResponse(BaseModel):
    status: Literal["live", "ready", "not_ready", "draining"]
    reason: str | None = None
    live: bool = Field(description="the process serves HTTP (what KServe's client reads)")
    ready: bool | None = Field(default=None, description="readiness: loaded, warmed up, not draining")


class OipError(BaseModel):
    """The Open Inference Protocol's error (every error under /v2); the stable code is in ``X-Error-Code``."""

    error: str = Field(examples=["model 'mnist' has no input 'images'; its inputs are ['image']"])


class ServerMetadata(BaseModel):
    name: str = Field(examples=["dae-service"])
    version: str
    extensions: list[str] = Field(examples=[["binary_tensor_data"]])
    models: list[str] = Field(description="the models this server serves (OIP names)")


class InferTensor(BaseModel):
    name: str
    datatype: str = Field(examples=["FP32"])
    shape: list[int] = Field(examples=[[1, 1, 32, 32]])
    parameters: dict[str, Any] | None = Field(
        default=None, description="binary_data_size (binary inputs/outputs), binary_data (requested outputs)"
    )
    data: list[Any] | None = Field(default=None, description="row-major values, flat or nested")


class InferResponseBody(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[InferTensor]
