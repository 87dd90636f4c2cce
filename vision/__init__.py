"""Image classification: fine-tune a pretrained torchvision model on an image folder, serve it."""
