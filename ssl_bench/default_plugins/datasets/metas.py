"""Metadata of the built-in dataset readers, apart from their code, with the label names the
metadata lists.

This module imports no torch or image library: the ``builtin-datasets`` plugin registers each
reader by import path with its metadata from here (:class:`ssl_bench.lazy.LazyClass`), so
``ssl-bench list`` and ``--help`` never import the readers. Each reader class takes its
``meta`` from here (one source of truth); a change that alters scores bumps ``version``.
"""

from __future__ import annotations

from ssl_bench.meta import DatasetMeta

#: label names, in class-id order, that the metadata lists (the readers import them from here)
CHOLEC80_PHASES = ("Preparation", "CalotTriangleDissection", "ClippingCutting",
                   "GallbladderDissection", "GallbladderPackaging", "CleaningCoagulation",
                   "GallbladderRetraction")
CHOLEC80_TOOLS = ("Grasper", "Bipolar", "Hook", "Scissors", "Clipper", "Irrigator", "SpecimenBag")
M2CAI16_PHASES = ("TrocarPlacement", "Preparation", "CalotTriangleDissection", "ClippingCutting",
                  "GallbladderDissection", "GallbladderPackaging", "CleaningCoagulation",
                  "GallbladderRetraction")
CHOLECSEG8K_CLASSES_13 = ("Black Background", "Abdominal Wall", "Liver",
                          "Gastrointestinal Tract", "Fat", "Grasper", "Connective Tissue",
                          "Blood", "Cystic Duct", "L-hook Electrocautery", "Gallbladder",
                          "Hepatic Vein", "Liver Ligament")
#: m2caiSeg class name -> its RGB colour in the label images (class id: position)
M2CAISEG_CLASS_COLOURS = {
    "out-of-frame": (0, 0, 0), "grasper": (0, 85, 170), "bipolar": (0, 85, 255),
    "hook": (0, 170, 255), "scissors": (0, 255, 85), "clipper": (0, 255, 170),
    "irrigator": (85, 0, 170), "specimen bag": (85, 0, 255), "trocars": (170, 85, 85),
    "clip": (170, 170, 170), "liver": (85, 170, 0), "gallbladder": (85, 170, 255),
    "fat": (85, 255, 0), "upper wall": (85, 255, 170), "artery": (170, 0, 255),
    "intestine": (255, 0, 255), "bile": (255, 255, 0), "blood": (255, 0, 0),
    "unknown": (170, 0, 85),
}
#: EndoVis 2017 class names per sub-task (reader option ``task``)
ENDOVIS2017_CLASSES = {
    "binary": ("background", "instrument"),
    "parts": ("background", "shaft", "wrist", "claspers"),
    "types": ("background", "bipolar forceps", "prograsp forceps", "large needle driver",
              "vessel sealer", "grasping retractor", "monopolar curved scissors", "other"),
}
BTCV_CLASSES = ("background", "spleen", "right kidney", "left kidney", "gallbladder",
                "esophagus", "liver", "stomach", "aorta", "IVC", "portal & splenic veins",
                "pancreas", "right adrenal", "left adrenal")
AMOS_CLASSES = ("background", "spleen", "right kidney", "left kidney", "gallbladder",
                "esophagus", "liver", "stomach", "aorta", "postcava", "pancreas",
                "right adrenal gland", "left adrenal gland", "duodenum", "bladder",
                "prostate/uterus")


CHOLEC80_META = DatasetMeta(
    id="cholec80",
    version="2",  # 2: the synthetic writer's textured world with varying phase lengths
    name="Cholec80",
    modality="video",
    domain="surgical",
    label_kind="phase",
    classes=CHOLEC80_PHASES,
    tools=CHOLEC80_TOOLS,
    license="CC BY-NC-SA 4.0",
    citation="Twinanda et al., EndoNet: A Deep Architecture for Recognition Tasks on "
             "Laparoscopic Videos, IEEE TMI 2017",
    url="http://camma.u-strasbg.fr/datasets",
    fps=25.0,
    relaxed_phase_groups=((3, 4), (5, 6)),
)

M2CAI16_WORKFLOW_META = DatasetMeta(
    id="m2cai16-workflow",
    version="1",
    name="M2CAI16 workflow",
    modality="video",
    domain="surgical",
    label_kind="phase",
    classes=M2CAI16_PHASES,
    license="CC BY-NC-SA 4.0",
    citation="Twinanda et al., Single- and Multi-Task Architectures for Surgical Workflow "
             "Challenge at M2CAI 2016, arXiv:1610.08851; Stauder et al., The TUM LapChole "
             "dataset for the M2CAI 2016 workflow challenge, arXiv:1610.09278",
    url="http://camma.u-strasbg.fr/m2cai2016/",
    fps=25.0,
    relaxed_phase_groups=((4, 5), (6, 7)),
)

CHOLECSEG8K_META = DatasetMeta(
    id="cholecseg8k",
    version="1",
    name="CholecSeg8k",
    modality="image",
    domain="surgical",
    label_kind="mask",
    classes=CHOLECSEG8K_CLASSES_13,
    license="CC BY-NC-SA 4.0",
    citation="Hong et al., CholecSeg8k: A Semantic Segmentation Dataset for Laparoscopic "
             "Cholecystectomy Based on Cholec80, arXiv:2012.12453, 2020",
    url="https://www.kaggle.com/datasets/newslab/cholecseg8k",
    fps=25.0,
)

M2CAISEG_META = DatasetMeta(
    id="m2caiseg",
    version="1",
    name="m2caiSeg",
    modality="image",
    domain="surgical",
    label_kind="mask",
    classes=tuple(M2CAISEG_CLASS_COLOURS),
    license="see the Kaggle dataset page (salmanmaq/m2caiseg)",
    citation="Maqbool et al., m2caiSeg: Semantic Segmentation of Laparoscopic Images using "
             "Convolutional Neural Networks, arXiv:2008.10134, 2020",
    url="https://www.kaggle.com/datasets/salmanmaq/m2caiseg",
)

ENDOVIS2017_META = DatasetMeta(
    id="endovis2017",
    version="1",
    name="EndoVis 2017 Robotic Instrument Segmentation",
    modality="image",
    domain="surgical",
    label_kind="mask",
    classes=ENDOVIS2017_CLASSES["binary"],
    license="see the EndoVis 2017 challenge data terms",
    citation="Allan et al., 2017 Robotic Instrument Segmentation Challenge, "
             "arXiv:1902.06426, 2019",
    url="https://endovissub2017-roboticinstrumentsegmentation.grand-challenge.org/",
)

KVASIR_INSTRUMENT_META = DatasetMeta(
    id="kvasir-instrument",
    version="1",
    name="Kvasir-Instrument",
    modality="image",
    domain="surgical",
    label_kind="mask",
    classes=("background", "instrument"),
    license="see https://datasets.simula.no/kvasir-instrument/",
    citation="Jha et al., Kvasir-Instrument: Diagnostic and Therapeutic Tool Segmentation "
             "Dataset in Gastrointestinal Endoscopy, MMM 2021",
    url="https://datasets.simula.no/kvasir-instrument/",
)

BTCV_META = DatasetMeta(
    id="btcv",
    version="1.1",
    name="BTCV (Synapse) multi-organ abdominal CT",
    modality="volume",
    domain="ct",
    label_kind="mask",
    classes=BTCV_CLASSES,
    license="Synapse BTCV challenge terms (registration required)",
    citation="Landman et al., MICCAI 2015 Multi-Atlas Labeling Beyond the Cranial Vault "
             "- Workshop and Challenge, 2015",
    url="https://www.synapse.org/#!Synapse:syn3193805",
    # HU-windowed intensities and left/right anatomy: SSL views keep both
    calibrated_intensity=True,
    lateralized=True,
)

MSD_META = DatasetMeta(
    id="msd",
    version="1.0",
    name="Medical Segmentation Decathlon task",
    modality="volume",
    domain="ct",
    label_kind="mask",
    classes=("background", "foreground"),  # replaced by the task's labels when readable
    license="CC-BY-SA 4.0",
    citation="Antonelli et al., The Medical Segmentation Decathlon, Nature Communications "
             "13, 4128, 2022",
    url="http://medicaldecathlon.com/",
    # CT tasks: HU-windowed intensities (MR tasks' first channel is not calibrated, but the
    # reader treats every task alike) and left/right anatomy: SSL views keep both
    calibrated_intensity=True,
    lateralized=True,
)

AMOS_META = DatasetMeta(
    id="amos",
    version="1.0",
    name="AMOS22 multi-organ abdominal CT (CT cases)",
    modality="volume",
    domain="ct",
    label_kind="mask",
    classes=AMOS_CLASSES,
    license="CC BY 4.0",
    citation="Ji et al., AMOS: A Large-Scale Abdominal Multi-Organ Benchmark for Versatile "
             "Medical Image Segmentation, NeurIPS Datasets and Benchmarks 2022",
    url="https://zenodo.org/records/7155725",
    # HU-windowed intensities and left/right anatomy: SSL views keep both
    calibrated_intensity=True,
    lateralized=True,
)
