"""Explainability (Hyatt & Lee's third pillar): attributions and four questions about them.

- ``attributions``: integrated gradients / gradient x input on the trusted torch conversion,
  occlusion on onnxruntime without one (Captum's implementations);
- ``sanity``: cascading model-parameter randomisation (Adebayo et al. 2018);
- ``stability``: max-sensitivity (Yeh et al. 2019);
- ``faithfulness``: deletion and insertion curves (Petsiuk et al. 2018);
- ``masks``: relevance mass in an evidence mask, accuracy with the background removed or
  swapped.

The check that runs them and judges what is obtained is verifiers/checks/explain.py.
"""

from verifiers.explain.attributions import Attributor, occlusion, white_box
from verifiers.explain.faithfulness import deletion_insertion
from verifiers.explain.masks import background_accuracy, donors, relevance_mass
from verifiers.explain.sanity import cascade, spearman, weight_layers
from verifiers.explain.stability import max_sensitivity

__all__ = ["Attributor", "background_accuracy", "cascade", "deletion_insertion", "donors",
           "max_sensitivity", "occlusion", "relevance_mass", "spearman", "weight_layers",
           "white_box"]
