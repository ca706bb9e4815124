import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from interpfool.data.first_images import FirstImages


def _loader(n=23, batch=5):
    x, y, m = torch.arange(n).float()[:, None], torch.arange(n), torch.arange(n) % 2 == 0
    return DataLoader(TensorDataset(x, y, m), batch_size=batch)


@pytest.mark.parametrize("n", [1, 4, 5, 12, 23, 40])
def test_first_images_yields_exactly_the_first_n_in_order_on_every_pass(n):
    first = FirstImages(_loader(), n)
    for _ in range(2):                                   # re-iterable: theta0, theta*, each defense
        seen = torch.cat([b[1] for b in first])
        assert seen.tolist() == list(range(min(n, 23)))
        for x, y, m in first:                            # every tensor of a batch is cut alike
            assert x.shape[0] == y.shape[0] == m.shape[0] and torch.equal(x[:, 0].long(), y)


def test_first_images_cuts_dict_batches_and_none_means_all():
    batches = [{"images": torch.zeros(4, 1), "masks": torch.ones(4, 2, 3)}, {"images": torch.zeros(4, 1),
                                                                              "masks": torch.ones(4, 2, 3)}]
    cut = list(FirstImages(batches, 6))
    assert [b["images"].shape[0] for b in cut] == [4, 2] and cut[1]["masks"].shape == (2, 2, 3)
    assert list(FirstImages(batches, None)) == batches


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_image_counts_are_refused_naming_the_setting(bad):
    with pytest.raises(ValueError, match=r"eval.images=.*allowed: null \(all\) or an integer >= 1"):
        FirstImages(_loader(), bad)
