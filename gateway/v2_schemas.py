"""Open Inference Protocol (V2) bodies as pydantic models: requests, responses, metadata."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from gateway.v2_tensors import DATATYPES
from onnxq.models.manifest import TensorSpec

Parameters = dict[str, StrictStr | StrictInt | StrictFloat | StrictBool]
Dimension = Annotated[int, Field(strict=True, ge=0, le=2**64 - 1)]


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr
    shape: list[Dimension]
    datatype: StrictStr
    parameters: Parameters | None = None
    # Absent when the tensor travels as binary data (parameters.binary_data_size).
    data: list[Any] | None = None


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StrictStr | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


def describe(error: ValidationError) -> str:
    """One line naming every problem pydantic found, e.g. 'inputs.0.shape: Field required'."""
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
        for item in error.errors()
    ]
    return "invalid inference request: " + "; ".join(problems)


def metadata_tensors(specs: list[TensorSpec]) -> list[dict[str, Any]]:
    """Manifest tensors as the protocol's metadata tensors: -1 for the dynamic batch axis."""
    return [
        {
            "name": spec.name,
            "datatype": DATATYPES[spec.dtype],
            "shape": [-1 if size is None else size for size in spec.shape],
        }
        for spec in specs
    ]


# ---- response bodies, for the OpenAPI document -----------------------------------------------


class V2ErrorResponse(BaseModel):
    error: str = Field(description="What went wrong, for a person to read.")


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLiveResponse(BaseModel):
    live: bool


class ServerReadyResponse(BaseModel):
    ready: bool


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 marks a variable-size axis (the batch).")


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] = Field(description="Row-major, flat.")


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class ConfigTensor(BaseModel):
    name: str
    data_type: str = Field(description="Triton's type name, e.g. TYPE_FP32.")
    dims: list[int] = Field(description="The shape without the batch axis.")
    reshape: dict[str, list[int]] | None = None


class ModelConfigResponse(BaseModel):
    name: str
    platform: str
    backend: str
    version_policy: dict[str, Any]
    max_batch_size: int
    input: list[ConfigTensor]
    output: list[ConfigTensor]


class RepositoryModel(BaseModel):
    name: str
    version: str
    state: str


class RepositoryIndexResponse(RootModel[list[RepositoryModel]]):
    pass
