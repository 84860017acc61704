"""Checkpoints load in Keras safe mode; unsafe or foreign .keras files are refused with the reason."""

import os

import pytest


@pytest.mark.backend_agnostic
def test_a_checkpoint_with_a_lambda_layer_is_refused_and_its_code_never_runs(cli, user_error, tmp_path, monkeypatch):
    import keras

    ran = tmp_path / "ran"
    monkeypatch.setenv("KERASCLF_TEST_LAMBDA_RAN", str(ran))
    inputs = keras.Input((4,))
    # the lambda leaves a file behind whenever it runs: on building the model here, and if Keras rebuilt it on load
    outputs = keras.layers.Lambda(
        lambda t: t * 2 + 0 * len(open(os.environ["KERASCLF_TEST_LAMBDA_RAN"], "w").name), name="double"
    )(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    ran.unlink()

    err = user_error(cli("evaluate", "--checkpoint", tmp_path / "lambda.keras"), "lambda.keras", "Lambda layer(s) (double)")
    assert "Python bytecode" in err and "safe mode" in err and "any code" in err
    assert not ran.exists()


@pytest.mark.backend_agnostic
def test_a_checkpoint_with_an_unknown_class_is_refused_naming_it(cli, user_error, tmp_path, monkeypatch):
    import keras

    @keras.saving.register_keras_serializable(package="elsewhere")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    inputs = keras.Input((4,))
    keras.Model(inputs, Doubler(name="doubler")(inputs)).save(tmp_path / "foreign.keras")
    monkeypatch.delitem(keras.saving.get_custom_objects(), "elsewhere>Doubler")  # as in a process that never imported it

    err = user_error(cli("evaluate", "--checkpoint", tmp_path / "foreign.keras"), "elsewhere>Doubler")
    assert "does not know" in err and "registered" in err


def test_a_config_without_lambdas_has_none_found():
    from kerasclf.safe_load import lambda_layers

    config = {"class_name": "Functional", "config": {"layers": [{"class_name": "Dense", "config": {"name": "d"}}]}}
    assert lambda_layers(config) == []
    config["config"]["layers"].append({"class_name": "Dense", "config": {"activation": {"class_name": "__lambda__"}}})
    assert lambda_layers(config) == ["a Python lambda"]
