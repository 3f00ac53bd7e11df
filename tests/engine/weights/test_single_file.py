"""Single-file (A1111 / ComfyUI) checkpoints: convert, load back offline, identical weights and images."""

import pickle
import shutil
import socket

import numpy as np
import pytest
import torch
from safetensors import safe_open

from pixelserve.core.model_config import SINGLE_FILE_FAMILIES, ModelSpec
from pixelserve.engine.weights import clip_vocab, single_file
from pixelserve.engine.demo import tiny
from pixelserve.engine.weights.convert import save_single_file
from pixelserve.engine.families import family_for
from pixelserve.engine.runners.models import ModelRegistry

# Well-known parameter counts of the public models the shipped configs describe.
from pixelserve.engine.weights.formats import WeightsFormatError, detect_format
SD15_UNET = 859_520_964
SDXL_UNET = 2_567_463_684
SD_VAE = 83_653_863
CLIP_L_TEXT = 123_060_480
OPEN_CLIP_BIGG_TEXT = 694_659_840  # with its 1280x1280 projection


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def converted(tiny_cache, tmp_path_factory):
    """family -> (tiny diffusers folder, its single-file checkpoint)."""
    out = tmp_path_factory.mktemp("single")
    pairs = {}
    for family in SINGLE_FILE_FAMILIES:
        folder = tiny.ensure_tiny_model(family, tiny_cache / "tiny")
        pairs[family] = (folder, save_single_file(folder, out / f"tiny-{family}.safetensors", family))
    return pairs


def _load(family, path, config, cache):
    """Through the registry, as the server loads a configured single-file model."""
    spec = ModelSpec(f"tiny-{family}-single", family, path, config=config)
    pipe = ModelRegistry({spec.id: spec}, cache).get(spec.id, "cpu").pipe
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _image(pipe):
    out = pipe("a photo of a cat", num_inference_steps=2, width=64, height=64,
               generator=torch.Generator("cpu").manual_seed(7), output_type="np")
    return out.images


@pytest.mark.parametrize("family", SINGLE_FILE_FAMILIES)
def test_checkpoint_is_in_original_layout(converted, family):
    _, path = converted[family]
    assert detect_format(path) == "single_file"
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        assert all(k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.",
                                 "conditioner.embedders.")) for k in keys)
        assert "model.diffusion_model.input_blocks.0.0.weight" in keys
        assert "model.diffusion_model.out.2.weight" in keys
        assert f.get_tensor("first_stage_model.decoder.mid.attn_1.q.weight").ndim == 4  # 1x1 conv
        if family == "sd":
            assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in keys
        else:
            assert "model.diffusion_model.label_emb.0.0.weight" in keys
            assert "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight" in keys
            open_clip = "conditioner.embedders.1.model."
            width = f.get_tensor(open_clip + "positional_embedding").shape[-1]
            assert f.get_tensor(open_clip + "transformer.resblocks.0.attn.in_proj_weight").shape == (3 * width, width)
            assert f.get_tensor(open_clip + "text_projection").shape[0] == width


@pytest.mark.parametrize("family", SINGLE_FILE_FAMILIES)
def test_single_file_loads_back_identical(converted, family, tmp_path, no_network):
    folder, path = converted[family]
    reference = _load(family, folder, None, tmp_path)  # the diffusers folder itself
    loaded = _load(family, path, folder, tmp_path)
    assert type(loaded) is type(reference)
    compared = 0
    for name, component in reference.components.items():
        if isinstance(component, torch.nn.Module):
            want, got = component.state_dict(), getattr(loaded, name).state_dict()
            assert want.keys() == got.keys(), name
            assert all(torch.equal(want[k], got[k]) for k in want), name
            compared += 1
    assert compared == (3 if family == "sd" else 4)
    # The weights are bit-identical (above); the images may still differ in the last float bits,
    # because tensors read from a different file land at other memory alignments and the CPU
    # matmul kernels then sum in another order (seen on the pooled text projection: 5e-7).
    np.testing.assert_allclose(_image(reference), _image(loaded), rtol=0, atol=1e-5)


def test_safetensors_content_with_another_extension_loads(converted, tmp_path, no_network):
    folder, path = converted["sd"]
    renamed = tmp_path / "model.ckpt"  # A1111 users rename files; the content decides
    shutil.copyfile(path, renamed)
    pipe = _load("sd", renamed, folder, tmp_path)
    ref = _load("sd", path, folder, tmp_path)
    want, got = ref.unet.state_dict(), pipe.unet.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def test_real_clip_tokenizer(tmp_path):
    from transformers import CLIPTokenizer

    folder = clip_vocab.write_clip_tokenizer(tmp_path / "tok")
    assert clip_vocab.write_clip_tokenizer(folder) == folder  # idempotent
    tok = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    assert len(tok) == clip_vocab.VOCAB_SIZE == 49408
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_missing_open_clip_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(clip_vocab.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(clip_vocab.ClipVocabUnavailable, match="open_clip_torch"):
        clip_vocab.write_clip_tokenizer(tmp_path / "tok")


@pytest.fixture(scope="module")
def assembled(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    return {family: single_file.assemble_config(family, work) for family in ("sd", "sdxl")}


def test_assembled_configs_have_real_tokenizers(assembled):
    from transformers import CLIPTokenizer

    ids = [49406, 320, 1125, 539, 320, 2368, 49407]
    for family, names in (("sd", ["tokenizer"]), ("sdxl", ["tokenizer", "tokenizer_2"])):
        for name in names:
            tok = CLIPTokenizer.from_pretrained(assembled[family] / name, local_files_only=True)
            assert tok("a photo of a cat").input_ids == ids
            assert tok.model_max_length == 77
    # SDXL's OpenCLIP tokenizer pads with "!" (id 0), as OpenCLIP does.
    tok2 = CLIPTokenizer.from_pretrained(assembled["sdxl"] / "tokenizer_2", local_files_only=True)
    assert tok2.pad_token_id == 0
    assert single_file.assemble_config("sd", assembled["sd"].parent) == assembled["sd"]  # reused


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("family, unet_params", [("sd", SD15_UNET), ("sdxl", SDXL_UNET)])
def test_shipped_configs_describe_the_real_models(assembled, family, unet_params):
    import diffusers
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = assembled[family]
    pipe_cls = family_for(family).pipeline_class()
    assert pipe_cls.load_config(folder)["_class_name"] == pipe_cls.__name__
    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel.from_config(diffusers.UNet2DConditionModel.load_config(folder / "unet"))
        vae = diffusers.AutoencoderKL.from_config(diffusers.AutoencoderKL.load_config(folder / "vae"))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))
        assert (_count(unet), _count(vae), _count(text)) == (unet_params, SD_VAE, CLIP_L_TEXT)
        if family == "sdxl":
            text_2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(folder / "text_encoder_2"))
            assert _count(text_2) == OPEN_CLIP_BIGG_TEXT
    sched = getattr(diffusers, pipe_cls.load_config(folder)["scheduler"][1]).from_pretrained(folder / "scheduler")
    assert (sched.config.beta_start, sched.config.beta_end, sched.config.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert type(sched).__name__ == {"sd": "PNDMScheduler", "sdxl": "EulerDiscreteScheduler"}[family]


def test_pickle_checkpoints_are_refused(tmp_path, converted):
    folder, _ = converted["sd"]
    zipped = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, zipped)  # torch's zip+pickle format
    legacy = tmp_path / "model.pt"
    legacy.write_bytes(pickle.dumps({"w": [0.0, 1.0]}))
    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(legacy.read_bytes())
    for bad in (zipped, legacy, disguised):
        with pytest.raises(WeightsFormatError):
            detect_format(bad)
        with pytest.raises(WeightsFormatError):
            _load("sd", bad, folder, tmp_path)
        with pytest.raises(WeightsFormatError):
            single_file.load_single_file(None, bad, family="sd", config_dir=folder, work_dir=tmp_path,
                                         torch_dtype=torch.float32)


def test_single_file_sdxl_with_single_file_refiner(converted, tiny_cache, tmp_path):
    from pixelserve.core.request import GenerationRequest

    base_folder, base_file = converted["sdxl"]
    refiner_folder = tiny.ensure_tiny_model("sdxl-refiner", tiny_cache / "tiny")
    refiner_file = save_single_file(refiner_folder, tmp_path / "refiner.safetensors", "sdxl")
    spec = ModelSpec("xl", "sdxl", base_file, refiner=refiner_file, config=base_folder, refiner_config=refiner_folder)
    model = ModelRegistry({"xl": spec}, tmp_path).get("xl", "cpu")
    assert model.refiner is not None and model.refiner.vae is model.pipe.vae
    from safetensors.torch import load_file

    on_disk = load_file(next((refiner_folder / "unet").glob("*.safetensors")))
    loaded = model.refiner.unet.state_dict()
    assert on_disk.keys() == loaded.keys() and all(torch.equal(v, loaded[k]) for k, v in on_disk.items())
    request = GenerationRequest(model="xl", prompt="a cat", width=64, height=64, steps=5, seeds=(3,))
    [image] = family_for("sdxl").run(model, request)
    assert image.size == (64, 64)
