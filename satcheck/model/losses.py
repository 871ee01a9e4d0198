"""The training loss: each change class learns only from sources whose labels speak of it.

The network has one sigmoid per class (building, hardened, excavation).  A
pixel has changed as much as its most likely class has, so a label that
speaks of several classes together supervises their maximum:

- ``all`` (the generator; NAIP with pasted buildings): change against the
  maximum of the three, and each changed pixel's own class against the others;
- ``building`` (LEVIR-CD): the building output alone.  A new yard or road
  left unlabelled there teaches nothing about hardened ground;
- ``construction`` (DSIFN, OSCD): the maximum of building and hardened;
  excavation learns nothing from them.

``torch.where`` passes no gradient to the branch it did not take, so an
output a source does not speak of gets exactly zero gradient from it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from satcheck.model.data import IGNORE, SUPERVISES

ALL, BUILDING_ONLY, CONSTRUCTION = (SUPERVISES.index(s) for s in ("all", "building", "construction"))
POS_WEIGHT = 3.0  # changed pixels are a few percent of a crop


def supervised_logit(logits: torch.Tensor, supervises: torch.Tensor) -> torch.Tensor:
    """(n, h, w): the logit each example's label speaks of."""
    b, h, e = logits[:, 0], logits[:, 1], logits[:, 2]
    construction = torch.maximum(b, h)
    g = supervises.view(-1, 1, 1)
    return torch.where(g == ALL, torch.maximum(construction, e), torch.where(g == BUILDING_ONLY, b, construction))


def loss_terms(logits: torch.Tensor, label: torch.Tensor, change_class: torch.Tensor,
               supervises: torch.Tensor, pos_weight: float = POS_WEIGHT) -> dict[str, torch.Tensor]:
    """``change`` (weighted BCE + Dice on the supervised logit) and ``type`` (the class of changed pixels
    whose source says it). ``pos_weight`` weighs changed pixels in the BCE: above 1 it buys recall with objects
    drawn wider than they are."""
    valid = label != IGNORE
    y = (label == 1).float()
    z = supervised_logit(logits, supervises)
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none", pos_weight=torch.tensor(pos_weight,
                                                                                             device=z.device))
    bce = (bce * valid).sum() / valid.sum().clamp(min=1)
    p = torch.sigmoid(z) * valid
    dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
    typed = (label == 1) & (change_class > 0) & (supervises.view(-1, 1, 1) == ALL)
    type_loss = torch.zeros((), device=logits.device)
    if typed.any():
        t_logits = logits.permute(0, 2, 3, 1)[typed]
        target = F.one_hot((change_class[typed] - 1).long(), logits.shape[1]).float()
        type_loss = F.binary_cross_entropy_with_logits(t_logits, target)
    return {"change": bce + dice, "type": type_loss}


def training_loss(logits: torch.Tensor, label: torch.Tensor, change_class: torch.Tensor,
                  supervises: torch.Tensor, pos_weight: float = POS_WEIGHT) -> torch.Tensor:
    terms = loss_terms(logits, label, change_class, supervises, pos_weight)
    return terms["change"] + 0.5 * terms["type"]
