"""latent"""
