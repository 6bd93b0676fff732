"""Models layer: timm backbones, classifier heads, pretrained weight resolution, freeze groups."""
