"""The network: every backbone builds with a head per class, weights come from the three places
`--weights` names (DEFAULT, a file, none) and fail with a message saying how to go on, freezing
leaves only the head trainable, and a saved model rebuilds to the same outputs.

Nothing is downloaded: the DEFAULT tests block torch.hub's download and point TORCH_HOME at an
empty folder, so a weights file cached on the developer's machine cannot hide a failure.
"""

from __future__ import annotations

import re
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torchvision.models import get_model, get_model_weights

from common.errors import UserError
from vision.images import Preprocessing
from vision.model import (
    BACKBONES,
    ModelSpec,
    WeightsError,
    build,
    head_of,
    set_backbone_trainable,
)


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """torch.hub as on a machine without network, with an empty cache; the URLs it was asked
    for land in the returned list."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    asked: list[str] = []

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        asked.append(url)
        raise urllib.error.URLError("offline")

    # torchvision imported torch.hub.load_state_dict_from_url by name, so patching that name
    # changes nothing; the download it calls is looked up in torch.hub at call time.
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return asked


@pytest.mark.parametrize("backbone", BACKBONES)
def test_each_backbone_builds_with_one_output_per_class(backbone: str) -> None:
    torch.manual_seed(0)
    net = build(backbone, 5, "none").eval()
    with torch.no_grad():
        logits = net(torch.randn(1, 3, 64, 64))
    assert logits.shape == (1, 5)
    assert head_of(net)[2].out_features == 5


def test_unknown_backbone_is_refused() -> None:
    with pytest.raises(UserError, match=r"unknown backbone 'vgg11'.*resnet18"):
        build("vgg11", 3, "none")


def test_weights_from_a_state_dict_file_keep_the_backbone_and_replace_the_head(
    tmp_path: Path,
) -> None:
    torch.manual_seed(1)
    source = get_model("resnet18", weights=None)  # an ImageNet layout: a 1000-class head
    assert source.fc.out_features == 1000
    source.layer4[1].bn2.running_mean.uniform_()  # buffers travel too, not only parameters
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)

    net = build("resnet18", 4, path)
    assert net.fc.out_features == 4
    assert torch.equal(net.conv1.weight, source.conv1.weight)
    assert torch.equal(net.layer3[0].conv2.weight, source.layer3[0].conv2.weight)
    assert torch.equal(net.layer4[1].bn2.running_mean, source.layer4[1].bn2.running_mean)
    # ... and those are not what a fresh random network would have had anyway.
    assert not torch.equal(build("resnet18", 4, "none").conv1.weight, source.conv1.weight)


def test_a_training_checkpoint_layout_is_accepted(tmp_path: Path) -> None:
    source = get_model("resnet18", weights=None)
    path = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, path)
    assert torch.equal(build("resnet18", 2, path).conv1.weight, source.conv1.weight)


def test_a_file_from_another_backbone_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "mobilenet.pt"
    torch.save(get_model("mobilenet_v3_small", weights=None).state_dict(), path)
    with pytest.raises(WeightsError, match=re.escape(str(path))) as caught:
        build("resnet18", 3, path)
    assert "does not fit resnet18" in str(caught.value)
    assert "another backbone" in str(caught.value)


def test_a_missing_weights_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nope.pt"
    with pytest.raises(WeightsError, match=re.escape(str(path)) + " does not exist"):
        build("resnet18", 3, path)


class _RunsCode:
    """Unpickling this would create `marker`: what a malicious weights file could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": _RunsCode(marker)}, path)
    with pytest.raises(WeightsError, match="not a state dict torch can load safely"):
        build("resnet18", 3, path)
    assert not marker.exists()


def test_a_whole_pickled_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(get_model("resnet18", weights=None), path)  # the module, not its state dict
    with pytest.raises(WeightsError, match=re.escape(str(path))):
        build("resnet18", 3, path)


def test_tensors_that_are_no_state_dict_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(WeightsError, match="holds a list, not a state dict"):
        build("resnet18", 3, path)


@pytest.mark.parametrize("backbone", ["mobilenet_v3_small", "resnet18"])
def test_default_weights_offline_stop_with_a_way_forward(backbone: str, offline: list[str]) -> None:
    url = get_model_weights(backbone).DEFAULT.url
    with pytest.raises(WeightsError) as caught:
        build(backbone, 3, "DEFAULT")  # never quietly a random network instead
    message = str(caught.value)
    assert offline == [url]  # it did try, exactly the weights' own URL
    assert url in message and "offline" in message
    assert "--weights none" in message and "--weights PATH" in message


@pytest.fixture
def hub_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """torch.hub with an empty cache and a download that "fetches" a random resnet18's state
    dict (`source`); the URLs asked for land in `asked`."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    torch.manual_seed(3)
    hub = SimpleNamespace(asked=[], source=get_model("resnet18", weights=None))

    def download(url: str, dst: str, *args: object, **kwargs: object) -> None:
        hub.asked.append(url)
        torch.save(hub.source.state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    return hub


def test_default_weights_are_downloaded_once_then_cached(hub_serves) -> None:
    url = get_model_weights("resnet18").DEFAULT.url
    net = build("resnet18", 3, "DEFAULT")
    assert hub_serves.asked == [url]
    assert net.fc.out_features == 3
    assert torch.equal(net.conv1.weight, hub_serves.source.conv1.weight)
    build("resnet18", 3, "default")  # the second time from the cache; the name in any case
    assert hub_serves.asked == [url]


def test_a_first_download_writes_nothing_on_stdout(
    hub_serves, capsys: pytest.CaptureFixture[str]
) -> None:
    build("resnet18", 3, "DEFAULT")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Downloading" in captured.err  # still shown, where progress belongs


def test_a_corrupt_cached_default_file_is_a_weights_error(offline: list[str]) -> None:
    """What a user gets who follows the message's advice and copies a wrong file (say, the
    HTML page a browser saved) into the cache folder."""
    url = get_model_weights("resnet18").DEFAULT.url
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    cache.mkdir(parents=True)
    (cache / url.rsplit("/", 1)[1]).write_bytes(b"<html>not the weights</html>")
    with pytest.raises(WeightsError, match=re.escape(url.rsplit("/", 1)[1])):
        build("resnet18", 3, "DEFAULT")


def test_freezing_leaves_only_the_head_trainable() -> None:
    net = build("mobilenet_v3_small", 3, "none")
    head = head_of(net)[2]
    head_ids = {id(p) for p in head.parameters()}
    set_backbone_trainable(net, False)
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == head_ids and len(trainable) == 2  # weight and bias
    set_backbone_trainable(net, True)
    assert all(p.requires_grad for p in net.parameters())


def test_spec_round_trip_rebuilds_the_same_network(tmp_path: Path) -> None:
    torch.manual_seed(2)
    net = build("mobilenet_v3_small", 3, "none").eval()
    with torch.no_grad():  # move BatchNorm statistics away from their initial values
        net.train()(torch.randn(4, 3, 32, 32))
    net.eval()
    prep = Preprocessing.for_size(32, ["circle", "square", "triangle"])
    spec = ModelSpec("mobilenet_v3_small", prep, temperature=1.7)
    spec.save(tmp_path, net)

    loaded = ModelSpec.load(tmp_path)
    assert loaded == spec and loaded.classes == ["circle", "square", "triangle"]
    rebuilt = loaded.load_network(tmp_path)
    assert not rebuilt.training
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), net(x))


def test_a_missing_spec_is_an_artifact_error(tmp_path: Path) -> None:
    from common.errors import ArtifactError

    with pytest.raises(ArtifactError, match=r"model\.json is missing or unreadable"):
        ModelSpec.load(tmp_path)
