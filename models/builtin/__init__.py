"""Manifests and weights of the models that ship with dicomnode, one folder each."""
