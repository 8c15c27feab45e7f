"""unpaired: unpaired image-to-image translation with patchwise contrastive learning."""
__version__ = "0.1.0"
