"""CT volume dataset readers."""

CT_DATASETS: list = []
