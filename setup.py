from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="vampkeras",
    version="0.1.0",
    description="VAEs with a VampPrior (Tomczak & Welling) in TensorFlow 2 / Keras 3 with TFP",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["vampkeras", "vampkeras.*"]) + ["vampkeras_cli"],
    package_dir={"vampkeras_cli": "cli"},
    install_requires=[line for line in Path(__file__).with_name("requirements.txt").read_text().splitlines()
                      if line.strip() and not line.startswith("#")],
    entry_points={"console_scripts": ["vampkeras = vampkeras_cli.main:main"]},
)
