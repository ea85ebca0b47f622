"""Reading infra/template.yaml in the scripts (provision, cost_model).

CloudFormation short tags become their long forms: `!Ref X` -> {"Ref": "X"},
`!GetAtt A.B` -> {"Fn::GetAtt": ["A", "B"]}, `!Sub ...` -> {"Fn::Sub": ...},
`!Condition C` -> {"Condition": "C"}, and so on. Only safe YAML (a SafeLoader subclass).
"""

import yaml


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short tags into their long forms."""


def _short_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + suffix: value}


CfnLoader.add_multi_constructor("!", _short_tag)


def load(path):
    """The template at `path` as plain data (OSError and yaml.YAMLError propagate)."""
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 - a SafeLoader subclass
