"""Node types, one class per type; ``NODE_TYPES`` maps a document's ``type`` to its class."""
from __future__ import annotations

from ivr.nodes.ask import AskNode
from ivr.nodes.base import CallContext, Node, Step
from ivr.nodes.branch import BranchNode
from ivr.nodes.choices import Choice, ChoiceNode
from ivr.nodes.collect_digits import CollectDigitsNode
from ivr.nodes.enqueue import EnqueueNode
from ivr.nodes.hangup import HangupNode
from ivr.nodes.lookup import LookupNode
from ivr.nodes.menu import MenuNode, Option
from ivr.nodes.say import SayNode
from ivr.nodes.set_language import SetLanguageNode
from ivr.nodes.survey import SurveyNode
from ivr.nodes.transfer import TransferNode

NODE_TYPES: dict[str, type[Node]] = {
    cls.type: cls for cls in (SayNode, MenuNode, CollectDigitsNode, AskNode, LookupNode,
                              BranchNode, SetLanguageNode, EnqueueNode, TransferNode,
                              SurveyNode, HangupNode)
}

__all__ = ["NODE_TYPES", "AskNode", "BranchNode", "CallContext", "Choice", "ChoiceNode",
           "CollectDigitsNode", "EnqueueNode", "HangupNode", "LookupNode", "MenuNode", "Node",
           "Option", "SayNode", "SetLanguageNode", "Step", "SurveyNode", "TransferNode"]
