"""``imri finetune`` (issue 11): the real e5-small trained for a few steps on a small gold set.

Checks what the fine-tuning promises: the frozen parts (embeddings, lower layers) keep their weights
and the others move; the folder lands whole in the user's cache with what it was trained on; the
encoder id ``e5-small-ft`` then embeds with it, under a version that names its weights.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finetuned(small_gold, tmp_path_factory):
    """e5-small fine-tuned on the small gold set for a tenth of an epoch into a cache of its own."""
    from pipeline.locations import cache_dir

    user_models = cache_dir() / "models"
    cache = tmp_path_factory.mktemp("cache")
    (cache / "models").mkdir()
    for entry in user_models.iterdir():  # the built e5-small folder, not rebuilt here
        if entry.name != "e5-small-ft":
            (cache / "models" / entry.name).symlink_to(entry)
    params = yaml.safe_load((small_gold / "params.yaml").read_text(encoding="utf-8"))
    params["finetune"] = {**params["finetune"], "epochs": 0.1, "frozen_layers": 6, "freeze_embeddings": True}
    params_file = tmp_path_factory.mktemp("params") / "params.yaml"
    params_file.write_text(yaml.safe_dump(params), encoding="utf-8")
    return cache, params_file


def test_finetune_moves_only_the_unfrozen_layers_and_embeds_as_e5_small_ft(finetuned, small_gold, run_cli, monkeypatch):
    from safetensors.numpy import load_file

    from pipeline.embed import E5SmallFinetuned, default_e5_dir, get_encoder

    cache, params = finetuned
    monkeypatch.setenv("IMRI_CACHE", str(cache))
    get_encoder.cache_clear()
    try:
        result = run_cli("finetune", "--gold", small_gold, "--params", params)
        assert result.code == 0, result.err
        folder = cache / "models" / "e5-small-ft"
        assert f"-> {folder}" in result.out
        info = json.loads((folder / "imri-finetune.json").read_text(encoding="utf-8"))
        assert info["pairs"] > 100 and info["config"]["frozen_layers"] == 6
        base = load_file(str(default_e5_dir() / "model.safetensors"))
        tuned = load_file(str(next(folder.rglob("model.safetensors"))))

        def weight(weights: dict, name: str) -> np.ndarray:
            return next(v for k, v in weights.items() if k.endswith(name))

        for frozen in (
            "embeddings.word_embeddings.weight",
            "layer.0.attention.self.query.weight",
            "layer.5.output.dense.weight",
        ):
            np.testing.assert_array_equal(weight(base, frozen), weight(tuned, frozen), err_msg=frozen)
        for trained in ("layer.6.attention.self.query.weight", "layer.11.output.dense.weight"):
            assert not np.array_equal(weight(base, trained), weight(tuned, trained)), trained

        encoder = get_encoder("e5-small-ft")
        assert isinstance(encoder, E5SmallFinetuned)
        assert encoder.version == f"ft-{info['weights_sha256'][:16]}"
        texts = ["J'ai enfin un logement à moi.", "My peer worker helped me find hope again."]
        tuned_vectors, base_vectors = encoder.encode(texts), get_encoder("e5-small").encode(texts)
        assert tuned_vectors.shape == base_vectors.shape == (2, 384)
        cosines = np.sum(tuned_vectors * base_vectors, axis=1)
        assert np.all(cosines < 0.99999) and np.all(cosines > 0.8)  # moved, but still the same encoder
    finally:
        get_encoder.cache_clear()


def test_e5_small_ft_before_finetuning_is_one_line(tmp_path, monkeypatch):
    from pipeline.embed import get_encoder
    from pipeline.errors import InputError

    monkeypatch.setenv("IMRI_CACHE", str(tmp_path))
    get_encoder.cache_clear()
    try:
        with pytest.raises(InputError, match="run `imri finetune` first"):
            _ = get_encoder("e5-small-ft").version
    finally:
        get_encoder.cache_clear()


def test_frozen_layers_out_of_range_is_refused():
    from pipeline.embed import FinetuneConfig, freeze

    class Bert:
        class encoder:  # noqa: N801
            layer = [object()] * 12

    with pytest.raises(Exception, match="frozen_layers must be 0 to 12"):
        freeze(Bert(), FinetuneConfig(freeze_embeddings=False, frozen_layers=13))
