import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from pipeline.evaluation import for_inference, longest_first, predict_logits


@pytest.fixture(scope="module")
def classifier(minilm_dir):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir, num_labels=2)
    return model, AutoTokenizer.from_pretrained(minilm_dir)


def test_for_inference_sets_evaluation_mode_on_the_available_device(classifier):
    model, _ = classifier
    model.train()
    assert for_inference(model) is model and not model.training
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(model.parameters()).device.type == expected


def test_predict_logits_returns_rows_in_their_order_whatever_the_batching(classifier):
    model, tokenizer = classifier
    texts = ["a", "a much longer review of a film that goes on", "fine", "not good at all"]
    dataset = Dataset.from_dict(dict(tokenizer(texts)))
    collator = DataCollatorWithPadding(tokenizer)
    together = predict_logits(model, dataset, collator, batch_size=4)
    one_by_one = np.concatenate([predict_logits(model, dataset.select([i]), collator, 1)
                                 for i in range(len(texts))])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_longest_first_orders_rows_by_input_length_keeping_ties_in_row_order():
    dataset = Dataset.from_dict({"input_ids": [[1] * 3, [1] * 5, [1], [1] * 5, [1] * 2]})
    assert longest_first(dataset).tolist() == [1, 3, 0, 4, 2]
