"""What a search leaves in its output folder, by name (light: no heavy imports)."""

SEARCH_FILE = "search.json"  # the search's name, MLflow run id and resolved config
BEST_MODEL = "best_model"  # the exported model: pipeline("text-classification", model=...)
RESULT_FILE = "hpo_result.json"  # inside best_model: hyperparameters, validation, test metrics
REPORT_DIR = "report"  # trials.md, trials.csv and the plots
OPTUNA_DB = "optuna.db"  # the Optuna study, named STUDY_NAME
STUDY_NAME = "search"


# Everything a search writes there, so --overwrite clears exactly these.
OWNED = (
    SEARCH_FILE,
    BEST_MODEL,
    REPORT_DIR,
    "ray_results",
    "mlflow.db",
    "mlartifacts",
    OPTUNA_DB,
)
