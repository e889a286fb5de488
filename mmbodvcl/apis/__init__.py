"""What the command-line tools (tools/) share: checkpoint conversion and the
loading of the analysis tools (tools/analysis/). Not imported by
``import mmbodvcl``; the tools import it."""
from .checkpoint import extract_backbone, load_backbone_state_dict

__all__ = ['extract_backbone', 'load_backbone_state_dict']
