from setuptools import find_packages, setup

with open("requirements.txt") as f:
    requirements = [line.strip() for line in f if line.strip() and not line.startswith("#")]

setup(
    name="hdr_gan_tf",
    version="0.6.0",
    description="HDR-GAN (Niu et al., IEEE TIP 2021) in TensorFlow 2 / Keras 3",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["hdr_gan_tf", "hdr_gan_tf.*"]),
    # HDR-VDP-2's spectra and pyramid filters.
    package_data={"hdr_gan_tf": ["hdr_vdp2_data/*.csv", "hdr_vdp2_data/*.npz"]},
    python_requires=">=3.10",
    install_requires=[r for r in requirements if not r.startswith(("pytest", "selenium"))],
    # The web page (hdr-gan-app); the tests drive it with Selenium.
    extras_require={"app": ["gradio>=6.0,<7"],
                    "test": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.6",
                             "selenium>=4.20"]},
    entry_points={"console_scripts": [
        "hdr-gan-train=hdr_gan_tf.cli.train:run",
        "hdr-gan-evaluate=hdr_gan_tf.cli.evaluate:run",
        "hdr-gan-infer=hdr_gan_tf.cli.infer:run",
        "hdr-gan-export=hdr_gan_tf.cli.export:run",
        "hdr-gan-convert-tf1=hdr_gan_tf.cli.convert_tf1:run",
        "hdr-gan-synth=hdr_gan_tf.cli.synthesize:run",
        "hdr-gan-app=hdr_gan_tf.cli.app:run",
    ]},
)
