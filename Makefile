# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out

.PHONY: venv demo test lint bench clean

venv: $(VENV)/.installed

# torch 2.14.1 / torchvision 0.29.1 are pinned in pyproject.toml; pip takes them from the local wheel store here.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: venv
	mkdir -p $(OUT)
	$(BIN)/streamstyle image samples/photos/skimage_chelsea.png $(OUT)/chelsea_starry.png --style samples/paintings/vangogh_starry_night.jpg
	$(BIN)/streamstyle image samples/photos/skimage_astronaut.png $(OUT)/astronaut_style7.jpg --style 7 --max-size 384
	$(BIN)/streamstyle styles --sheet samples/photos/skimage_coffee.png -o $(OUT)/styles_sheet.png
	@echo "wrote $(OUT)/chelsea_starry.png $(OUT)/astronaut_style7.jpg $(OUT)/styles_sheet.png"

test: venv
	$(BIN)/ruff check streamstyle tests benchmarks
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python benchmarks/models.py

clean:
	rm -rf $(VENV) $(OUT)
