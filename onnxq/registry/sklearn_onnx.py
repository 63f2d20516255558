"""Converting a fitted scikit-learn-API estimator (LightGBM's and XGBoost's included) to ONNX.

skl2onnx converts scikit-learn; onnxmltools brings the converters of LightGBM and XGBoost, which
are registered with skl2onnx here, so that a pipeline ending in an LGBMClassifier converts like
any other. The graph always takes one float32 input `input` of `width` columns and gives:

- a classifier with probabilities: `label` and `probabilities` (a tensor: ZipMap off);
- a classifier without (LinearSVC, RidgeClassifier): `label` and `scores` (decision function);
- a regressor: `predictions`, one column per target.
"""

from __future__ import annotations

from typing import Any, Literal

from onnxq.errors import InvalidInput
from onnxq.registry.export_dir import (
    INPUT_NAME,
    LABEL_OUTPUT,
    PREDICTION_OUTPUT,
    PROBABILITY_OUTPUT,
    SCORES_OUTPUT,
)

Kind = Literal["classifier", "classifier-without-probabilities", "regressor"]
# ONNX's ML operator set 3: the highest skl2onnx 1.20 combines with onnxmltools' tree converters.
ML_OPSET = 3
_GRADIENT_BOOSTING = {"lightgbm": "lightgbm", "xgboost": "xgboost"}


def final_step(estimator: Any) -> Any:
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator


def framework_of(estimator: Any) -> str:
    """'lightgbm', 'xgboost' or 'scikit-learn': where the final step comes from."""
    module = type(final_step(estimator)).__module__.split(".")[0]
    return _GRADIENT_BOOSTING.get(module, "scikit-learn")


def kind_of(estimator: Any) -> Kind:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator) and hasattr(estimator, "classes_"):
        return (
            "classifier"
            if hasattr(estimator, "predict_proba")
            else ("classifier-without-probabilities")
        )
    if is_regressor(estimator):
        return "regressor"
    raise InvalidInput(
        f"a {type(estimator).__name__} is neither a fitted classifier nor a regressor"
    )


def _register_gradient_boosting(framework: str) -> None:
    """Teach skl2onnx LightGBM's or XGBoost's estimators (needs the `boosting` extra)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    try:
        if framework == "lightgbm":
            from lightgbm import LGBMClassifier, LGBMRegressor
            from onnxmltools.convert.lightgbm.operator_converters.LightGbm import (
                convert_lightgbm as convert,
            )

            classifier, regressor = LGBMClassifier, LGBMRegressor
        else:
            from onnxmltools.convert.xgboost.operator_converters.XGBoost import (
                convert_xgboost as convert,
            )
            from xgboost import XGBClassifier, XGBRegressor

            classifier, regressor = XGBClassifier, XGBRegressor
    except ImportError as exc:
        raise InvalidInput(
            f"exporting a {framework} model needs onnxmltools: pip install 'onnxq[boosting]' "
            f"({exc})"
        ) from exc
    name = type(classifier()).__name__
    update_registered_converter(
        classifier,
        f"{framework}{name}",
        calculate_linear_classifier_output_shapes,
        convert,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        regressor,
        f"{framework}{type(regressor()).__name__}",
        calculate_linear_regressor_output_shapes,
        convert,
    )


def sklearn_to_onnx(estimator: Any, width: int) -> bytes:
    """ONNX bytes of a fitted estimator or pipeline, with the names in the module doc."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    framework = framework_of(estimator)
    kind = kind_of(estimator)
    options: dict[int, dict[str, Any]] | None = None
    if kind == "classifier":
        # ZipMap is an option of the classifier itself, also when it is the last step.
        options = {id(final_step(estimator)): {"zipmap": False}}
    target_opset: dict[str, int] | None = None
    if framework != "scikit-learn":
        from skl2onnx import get_latest_tested_opset_version

        _register_gradient_boosting(framework)
        # Both domains pinned: onnxmltools would otherwise use opsets skl2onnx cannot combine.
        target_opset = {"": get_latest_tested_opset_version(), "ai.onnx.ml": ML_OPSET}
    onnx_model = to_onnx(
        estimator,
        initial_types=[(INPUT_NAME, FloatTensorType([None, width]))],
        options=options,
        target_opset=target_opset,
        final_types=None,
    )
    names = {
        "classifier": (LABEL_OUTPUT, PROBABILITY_OUTPUT),
        "classifier-without-probabilities": (LABEL_OUTPUT, SCORES_OUTPUT),
        "regressor": (PREDICTION_OUTPUT,),
    }[kind]
    for output, name in zip(onnx_model.graph.output, names, strict=True):
        _rename_output(onnx_model, output.name, name)
    return onnx_model.SerializeToString()  # type: ignore[no-any-return]


def _rename_output(model: Any, old: str, new: str) -> None:
    if old == new:
        return
    for node in model.graph.node:
        node.output[:] = [new if out == old else out for out in node.output]
    for output in model.graph.output:
        if output.name == old:
            output.name = new
