"""Neural networks of mcsp: the MCSP model and its domain encoders and fusion."""

from mcsp.models.fusion import DomainFusion
from mcsp.models.graph import GraphTransformer
from mcsp.models.mcsp import MCSP, model_settings
from mcsp.models.sequence import SequenceTransformer

__all__ = ["MCSP", "DomainFusion", "GraphTransformer", "SequenceTransformer", "model_settings"]
