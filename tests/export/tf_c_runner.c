/* Runs signatures of a SavedModel through TensorFlow's C API, i.e. the C++ loader
 * (LoadSavedModel, tag "serve") that TF Serving uses, with no Python involved.
 *
 * Usage: tf_c_runner EXPORT_DIR SPEC_FILE
 *
 * Each line of SPEC_FILE is one Session::Run:
 *   INPUT_TENSOR KIND REQUEST_FILE OUTPUT_TENSORS OUTPUT_PREFIX
 * KIND is "string", "uint8" or "float". REQUEST_FILE holds, for "string", int64 n then
 * n records (int64 length, bytes); otherwise int64 ndims, ndims int64 dims, raw data.
 * OUTPUT_TENSORS is comma separated ("StatefulPartitionedCall:0,..."); output i is
 * written to OUTPUT_PREFIX.i as int32 dtype, int64 ndims, int64 dims, then the raw data or,
 * for a string tensor, one record (int64 length, bytes) per element.
 * For each line the program prints "OK" or "ERROR <TF_Code> <message>" on one line and
 * goes on with the next line (the session must survive bad requests).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorflow/c/c_api.h"
#include "tensorflow/c/tf_tstring.h"

#define MAX_OUTPUTS 8

static void die(const char *what, TF_Status *status) {
  fprintf(stderr, "FATAL %s: %s\n", what, status ? TF_Message(status) : "");
  exit(1);
}

static void *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) die(path, NULL);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  void *data = malloc(n > 0 ? n : 1);
  if (n > 0 && fread(data, 1, n, f) != (size_t)n) die(path, NULL);
  fclose(f);
  *size = (size_t)n;
  return data;
}

static TF_Output tensor_by_name(TF_Graph *graph, const char *name) {
  char op_name[512];
  strncpy(op_name, name, sizeof(op_name) - 1);
  op_name[sizeof(op_name) - 1] = 0;
  int index = 0;
  char *colon = strrchr(op_name, ':');
  if (colon) {
    index = atoi(colon + 1);
    *colon = 0;
  }
  TF_Operation *op = TF_GraphOperationByName(graph, op_name);
  if (!op) {
    fprintf(stderr, "FATAL no operation %s in the graph\n", op_name);
    exit(1);
  }
  TF_Output out = {op, index};
  return out;
}

static TF_Tensor *make_input(const char *kind, const char *path) {
  size_t size;
  char *data = read_file(path, &size);
  const char *p = data;
  TF_Tensor *tensor;
  if (strcmp(kind, "string") == 0) {
    int64_t n;
    memcpy(&n, p, 8);
    p += 8;
    int64_t dims[1] = {n};
    tensor = TF_AllocateTensor(TF_STRING, dims, 1, sizeof(TF_TString) * (n > 0 ? n : 0));
    TF_TString *strings = (TF_TString *)TF_TensorData(tensor);
    for (int64_t i = 0; i < n; ++i) {
      int64_t length;
      memcpy(&length, p, 8);
      p += 8;
      TF_StringInit(&strings[i]);
      TF_StringCopy(&strings[i], p, (size_t)length);
      p += length;
    }
  } else {
    int64_t ndims;
    memcpy(&ndims, p, 8);
    p += 8;
    int64_t dims[8];
    size_t count = 1;
    for (int64_t i = 0; i < ndims; ++i) {
      memcpy(&dims[i], p, 8);
      p += 8;
      count *= (size_t)dims[i];
    }
    TF_DataType dtype = strcmp(kind, "uint8") == 0 ? TF_UINT8 : TF_FLOAT;
    size_t bytes = count * TF_DataTypeSize(dtype);
    tensor = TF_AllocateTensor(dtype, dims, (int)ndims, bytes);
    if (bytes) memcpy(TF_TensorData(tensor), p, bytes);
  }
  free(data);
  return tensor;
}

static void write_output(const char *prefix, int i, TF_Tensor *t) {
  char path[1024];
  snprintf(path, sizeof(path), "%s.%d", prefix, i);
  FILE *f = fopen(path, "wb");
  if (!f) die(path, NULL);
  int32_t dtype = (int32_t)TF_TensorType(t);
  int64_t ndims = TF_NumDims(t);
  fwrite(&dtype, 4, 1, f);
  fwrite(&ndims, 8, 1, f);
  for (int d = 0; d < ndims; ++d) {
    int64_t dim = TF_Dim(t, d);
    fwrite(&dim, 8, 1, f);
  }
  if (TF_TensorType(t) == TF_STRING) {
    const TF_TString *strings = (const TF_TString *)TF_TensorData(t);
    for (int64_t k = 0; k < TF_TensorElementCount(t); ++k) {
      int64_t length = (int64_t)TF_StringGetSize(&strings[k]);
      fwrite(&length, 8, 1, f);
      fwrite(TF_StringGetDataPointer(&strings[k]), 1, (size_t)length, f);
    }
  } else {
    fwrite(TF_TensorData(t), 1, TF_TensorByteSize(t), f);
  }
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s EXPORT_DIR SPEC_FILE\n", argv[0]);
    return 2;
  }
  TF_Status *status = TF_NewStatus();
  TF_Graph *graph = TF_NewGraph();
  TF_SessionOptions *options = TF_NewSessionOptions();
  const char *tags[] = {"serve"};
  TF_Session *session = TF_LoadSessionFromSavedModel(options, NULL, argv[1], tags, 1, graph, NULL, status);
  if (TF_GetCode(status) != TF_OK) die("TF_LoadSessionFromSavedModel", status);
  printf("LOADED\n");
  fflush(stdout);

  FILE *spec = fopen(argv[2], "r");
  if (!spec) die(argv[2], NULL);
  char input_name[512], kind[32], request[1024], outputs_csv[2048], prefix[1024];
  while (fscanf(spec, "%511s %31s %1023s %2047s %1023s", input_name, kind, request, outputs_csv, prefix) == 5) {
    TF_Output input = tensor_by_name(graph, input_name);
    TF_Tensor *input_value = make_input(kind, request);
    TF_Output outputs[MAX_OUTPUTS];
    TF_Tensor *output_values[MAX_OUTPUTS] = {0};
    int num_outputs = 0;
    for (char *name = strtok(outputs_csv, ","); name && num_outputs < MAX_OUTPUTS; name = strtok(NULL, ",")) {
      outputs[num_outputs++] = tensor_by_name(graph, name);
    }
    TF_SessionRun(session, NULL, &input, &input_value, 1, outputs, output_values, num_outputs, NULL, 0, NULL,
                  status);
    if (TF_GetCode(status) == TF_OK) {
      for (int i = 0; i < num_outputs; ++i) {
        write_output(prefix, i, output_values[i]);
        TF_DeleteTensor(output_values[i]);
      }
      printf("OK\n");
    } else {
      /* One line: newlines in the message become spaces. */
      char message[4096];
      strncpy(message, TF_Message(status), sizeof(message) - 1);
      message[sizeof(message) - 1] = 0;
      for (char *c = message; *c; ++c)
        if (*c == '\n') *c = ' ';
      printf("ERROR %d %s\n", (int)TF_GetCode(status), message);
    }
    fflush(stdout);
    TF_DeleteTensor(input_value);
  }
  fclose(spec);
  TF_CloseSession(session, status);
  TF_DeleteSession(session, status);
  TF_DeleteSessionOptions(options);
  TF_DeleteGraph(graph);
  TF_DeleteStatus(status);
  return 0;
}
