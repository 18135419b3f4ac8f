from setuptools import find_packages, setup

setup(
    name="nat_plugins",
    version="0.1.0",
    description="fairseq plugin for non-autoregressive machine translation (CMLM, SUNDAE, DA-Transformer, DiffGLAT)",
    packages=find_packages(include=["nat_plugins", "nat_plugins.*"]),
    package_data={"nat_plugins.ops": ["csrc/*.cu", "csrc/*.cpp", "csrc/*.h"]},
    python_requires=">=3.9",
    # torch and fairseq are deliberately not listed: pip would otherwise
    # replace a user's CUDA torch or pull torchaudio (see README).
    install_requires=["numpy", "sacrebleu>=2", "sacremoses", "subword-nmt"],
)
