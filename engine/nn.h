/*
 * nn.h - the public interface of the nnd training engine.
 *
 * The engine trains and runs feed-forward networks described by a tree of layer
 * specs (see shared/API.md, "Models"). It knows nothing of HTTP, JSON or files:
 * models and checkpoints are serialised to and from memory buffers, and the
 * caller decides where the bytes go.
 *
 * Conventions:
 *  - float32, row-major, rows = samples. Dense weights are [out][in] like
 *    PyTorch's nn.Linear.weight.
 *  - Functions that can fail return an nn_status and, when err is not NULL,
 *    write a NUL-terminated message of at most errlen bytes. Nothing here
 *    prints, exits or aborts on bad input.
 *  - Free functions accept NULL.
 */
#ifndef NN_H
#define NN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NN_VERSION "0.1.0"

typedef enum {
	NN_OK = 0,
	NN_EINVAL,      /* bad spec, config, shape or argument */
	NN_ENOMEM,      /* allocation failed */
	NN_EDIVERGED,   /* loss became NaN or infinite */
	NN_ESTOPPED,    /* the caller asked training to stop (cancel or shutdown) */
	NN_ECORRUPT,    /* a model file or checkpoint failed its checks */
	NN_ELIMIT       /* a size limit was exceeded */
} nn_status;

/* A short lowercase name for a status ("ok", "invalid", "diverged", ...). */
const char *nn_status_name(nn_status s);

/* ---------------------------------------------------------------- random */

/* xoshiro256** seeded through splitmix64. The state is plain data, so it can be
 * copied, saved in a checkpoint and restored. */
typedef struct nn_rng {
	uint64_t s[4];
} nn_rng;

void nn_rng_seed(nn_rng *r, uint64_t seed);
uint64_t nn_rng_next(nn_rng *r);
/* Uniform in [0, 1) with 24 random bits. */
float nn_rng_uniform(nn_rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint64_t nn_rng_below(nn_rng *r, uint64_t n);
/* Standard normal by Box-Muller, one value per call (the second is discarded),
 * so the stream is a pure function of the state. */
float nn_rng_normal(nn_rng *r);

/* ---------------------------------------------------------------- specs */

typedef enum { NN_TASK_CLASSIFICATION, NN_TASK_REGRESSION } nn_task;

typedef enum {
	NN_LAYER_DENSE,
	NN_LAYER_ACTIVATION,
	NN_LAYER_BATCH_NORM,
	NN_LAYER_DROPOUT,
	NN_LAYER_RESIDUAL
} nn_layer_type;

typedef enum {
	NN_ACT_IDENTITY,
	NN_ACT_RELU,
	NN_ACT_LEAKY_RELU, /* slope alpha, default 0.01 */
	NN_ACT_ELU,        /* alpha, default 1 */
	NN_ACT_SIGMOID,
	NN_ACT_TANH,
	NN_ACT_SOFTPLUS,
	NN_ACT_GELU        /* exact, with erf */
} nn_act;

typedef enum {
	NN_INIT_AUTO,      /* He for relu family, Xavier for tanh/sigmoid, LeCun otherwise
	                    * (he_normal, xavier_uniform, lecun_normal), by the layer's
	                    * activation or, when identity, a directly following
	                    * activation layer's */
	NN_INIT_ZEROS,
	NN_INIT_NORMAL,    /* N(0, param^2); param = std (default 0.01) */
	NN_INIT_UNIFORM,   /* U(-param, param); param = limit (default 0.05) */
	NN_INIT_LECUN_NORMAL,
	NN_INIT_LECUN_UNIFORM,
	NN_INIT_HE_NORMAL,
	NN_INIT_HE_UNIFORM,
	NN_INIT_XAVIER_NORMAL,
	NN_INIT_XAVIER_UNIFORM
} nn_init;

typedef enum { NN_DROPOUT_INVERTED, NN_DROPOUT_SCALE_AT_TEST } nn_dropout_mode;

/*
 * One layer of the spec tree. Only the fields of its type are read.
 * A residual's children are owned by it (children[0..n_children)).
 */
typedef struct nn_layer_spec {
	nn_layer_type type;
	/* dense */
	int units;
	nn_act act;            /* dense: activation after the affine map; activation: the function */
	float alpha;           /* leaky_relu slope / elu alpha; 0 means the default */
	nn_init init;          /* dense */
	float init_param;      /* std for NN_INIT_NORMAL, limit for NN_INIT_UNIFORM; 0 = default */
	int bias;              /* dense: 1 = has a bias */
	/* batch_norm */
	float momentum;        /* default 0.1 */
	float eps;             /* default 1e-5 */
	/* dropout */
	float rate;            /* in [0, 1) */
	nn_dropout_mode mode;
	/* residual */
	int projection;        /* 1 = learned linear shortcut (no bias), initialised
	                        * with the rule of the block's first dense layer */
	struct nn_layer_spec *children;
	int n_children;
} nn_layer_spec;

/* A layer spec with every default filled in (dense: bias 1, act identity, init
 * auto; batch_norm: momentum 0.1, eps 1e-5; dropout: inverted). */
nn_layer_spec nn_layer_default(nn_layer_type type);

/*
 * A whole model. `layers` are the hidden layers; nn_model_create appends the
 * output layer (dense, `outputs` units, identity) itself.
 */
typedef struct nn_model_spec {
	nn_task task;
	int inputs;
	int outputs;           /* classes for classification */
	nn_init init;          /* default for dense layers whose init is NN_INIT_AUTO */
	uint64_t seed;         /* initialisation seed */
	nn_layer_spec *layers;
	int n_layers;
} nn_model_spec;

/* Deep copy / free of a layer array (spec trees are plain data). */
nn_status nn_layers_copy(const nn_layer_spec *src, int n, nn_layer_spec **out);
void nn_layers_free(nn_layer_spec *layers, int n);

/* The most shards a job may cut its batches into (each keeps a workspace
 * and a gradient of its own). */
#define NN_MAX_SHARDS 64

/*
 * Checks a spec without allocating the model: widths, residual shapes, ranges.
 * On success stores the trainable parameter count in *params (may be NULL).
 * The message names the layer by its JSON path, e.g. "layers[3].layers[1]".
 * Limits: nesting depth <= NN_MAX_DEPTH, params <= max_params (0 = no limit).
 */
#define NN_MAX_DEPTH 16
nn_status nn_spec_check(const nn_model_spec *spec, int64_t max_params, int64_t *params,
                        char *err, size_t errlen);

/* ---------------------------------------------------------------- model */

typedef struct nn_model nn_model;

/* Builds a model from a spec (deep-copied; the output layer appended) and
 * initialises its weights with spec->seed. Returns NULL and fills err on failure. */
nn_model *nn_model_create(const nn_model_spec *spec, char *err, size_t errlen);
void nn_model_free(nn_model *m);
/* A deep copy: spec, parameters, running statistics and standardisation. */
nn_model *nn_model_clone(const nn_model *m);

/* The stored spec, output layer included as the last entry of layers. */
const nn_model_spec *nn_model_spec_of(const nn_model *m);
int64_t nn_model_param_count(const nn_model *m);

/* Re-initialises every parameter from `seed` (running stats reset to 0 / 1). */
void nn_model_init(nn_model *m, uint64_t seed);

/* Fills n floats from `init` for a [fan_out][fan_in] tensor (exposed for tests). */
void nn_init_fill(float *w, int64_t n, nn_init init, float param, int fan_in, int fan_out,
                  nn_rng *rng);

typedef enum {
	NN_T_WEIGHT, NN_T_BIAS, NN_T_GAMMA, NN_T_BETA, NN_T_RUNNING_MEAN, NN_T_RUNNING_VAR
} nn_tensor_kind;

/*
 * The model's tensors in a fixed order: a pre-order walk of the spec tree
 * (output layer last); a dense layer gives weight then bias (when it has one),
 * a residual with projection gives its shortcut weight (kind WEIGHT, path
 * "...layers[i].projection") after its children's tensors, batch norm gives
 * gamma, beta, running_mean, running_var. `data` points into the model.
 */
typedef struct nn_tensor {
	const char *path;      /* the layer's JSON path, e.g. "layers[1].layers[0]" */
	nn_tensor_kind kind;
	int rows, cols;        /* weight: rows = out, cols = in; vectors: rows = 1 */
	int trainable;         /* 0 for running statistics */
	float *data;
} nn_tensor;

int nn_model_tensor_count(const nn_model *m);
/* i in [0, count). The returned struct points into the model. */
nn_tensor nn_model_tensor(const nn_model *m, int i);

/* The flat blocks: all trainable parameters, and the non-trainable state
 * (running statistics). Lengths through the *n arguments. */
float *nn_model_params(nn_model *m, int64_t *n);
float *nn_model_state(nn_model *m, int64_t *n);

/* Input standardisation stored with the model: x' = (x - mean) / std.
 * Pass NULL to remove it. Arrays have `inputs` entries and are copied.
 * A std of 0 is stored as 1 (a constant feature is only centred); a
 * negative or non-finite value is refused with NN_EINVAL. */
nn_status nn_model_set_standardize(nn_model *m, const float *mean, const float *std);
/* NULL when the model has none. */
const float *nn_model_std_mean(const nn_model *m);
const float *nn_model_std_std(const nn_model *m);

/* ---------------------------------------------------------------- inference */

/* Per-thread scratch for prediction, sized for up to max_rows rows at a time. */
typedef struct nn_scratch nn_scratch;
nn_scratch *nn_scratch_create(const nn_model *m, int max_rows);
/* The same for a model whose weights will not change again (a published
 * model version): the scratch may keep the first layer's weights packed for
 * rows that are mostly zeros (image pixels), which then skip their zero
 * inputs, and single rows run matrix-vector products on every dense layer's
 * weights packed once per model (kept with the model, shared by all its
 * frozen scratches, freed by nn_model_free), as do blocks of a few rows
 * not sparse enough for the sparse kernel (each row then gets the bits it
 * gets alone, unless alone it would take the sparse kernel). Predictions
 * agree with the dense path's to float rounding. */
nn_scratch *nn_scratch_create_frozen(const nn_model *m, int max_rows);
void nn_scratch_free(nn_scratch *s);

/*
 * Inference-mode forward pass on n raw rows of x (inputs wide), applying the
 * model's standardisation. out gets n x outputs values: softmax probabilities
 * for classification, the outputs for regression. The model is only read, so
 * many threads may predict at once, each with its own scratch. n may exceed
 * the scratch's max_rows (done in chunks).
 */
nn_status nn_predict(const nn_model *m, nn_scratch *s, const float *x, int n, float *out);

/* ---------------------------------------------------------------- data */

/*
 * A data set as the engine sees it (borrowed, not copied).
 * classification: labels[rows] in [0, outputs), targets NULL.
 * regression: targets[rows][outputs], labels NULL.
 * image: width*height*channels == features when width > 0 (channel-last).
 */
typedef struct nn_data {
	int64_t rows;
	int features;
	int outputs;
	const float *x;
	const int32_t *labels;
	const float *targets;
	int width, height, channels;
	/* Optional: the same rows as bytes (every value an integer 0..255), for
	 * data stored that way. With x NULL it is the only copy; given beside x,
	 * both must hold the same values. Training then reads the bytes. */
	const uint8_t *x8;
} nn_data;

/* Converts n floats to bytes for nn_data.x8: 1 when every one is an integer
 * in 0..255 (-0 counts as 0), else 0 (NaN included), and then dst holds
 * garbage. The engine's own byte copy uses the same rule. */
int nn_to_bytes(uint8_t *dst, const float *src, int64_t n);

/* Asks for transparent huge pages for a large buffer (2 MiB or more) about
 * to be filled: the kernel then faults it in 2 MiB at a time instead of
 * 4 KiB (a few dozen faults for tens of MB), and rows read at random miss
 * the TLB less. The hint covers every page [p, p + len) touches, so a
 * malloc'd block keeps one mapping and realloc can still move it with one
 * mremap (a hint over the 2 MiB-aligned inside only splits the mapping in
 * three, and glibc then copies the block instead); the kernel gives 2 MiB
 * pages to the aligned inside. Only a hint: nothing changes where it is
 * refused; pages never written are never faulted. */
void nn_huge_pages(void *p, size_t len);

/* ---------------------------------------------------------------- training */

typedef enum {
	NN_OPT_SGD, NN_OPT_MOMENTUM, NN_OPT_NESTEROV, NN_OPT_ADAGRAD, NN_OPT_RMSPROP,
	NN_OPT_ADAM, NN_OPT_ADAMW
} nn_opt_type;

typedef struct nn_optimizer {
	nn_opt_type type;
	float lr;
	float momentum;        /* momentum, nesterov: default 0.9 */
	float beta1, beta2;    /* adam(w): 0.9, 0.999 */
	float eps;             /* adam 1e-8, adagrad 1e-10, rmsprop 1e-8 */
	float rho;             /* rmsprop: 0.99 */
	float weight_decay;    /* adamw: 0.01 */
} nn_optimizer;

typedef enum {
	NN_SCHED_CONSTANT, NN_SCHED_STEP, NN_SCHED_EXPONENTIAL, NN_SCHED_POLYNOMIAL,
	NN_SCHED_CYCLICAL, NN_SCHED_COSINE
} nn_sched_type;

typedef struct nn_schedule {
	nn_sched_type type;
	int per_step;          /* 1: t counts steps instead of epochs */
	float step_epochs;     /* step: period (default 10) */
	float gamma;           /* step: factor (default 0.1) */
	float k;               /* exponential, polynomial: rate (default 0.1) */
	float power;           /* polynomial: exponent (default 1) */
	float min_lr, max_lr;  /* cyclical (and cosine's floor, min_lr) */
	float half_cycle_epochs; /* cyclical (default 2) */
	float warmup_epochs;   /* 0 = none; in steps when per_step */
} nn_schedule;

/* The learning rate at time t (epoch or step, 0-based) of a run of `total`
 * epochs (steps when per_step) with base rate lr0. */
float nn_schedule_lr(const nn_schedule *s, float lr0, double t, double total);

typedef enum { NN_AVG_NONE, NN_AVG_POLYAK, NN_AVG_EMA } nn_avg_type;
typedef enum { NN_BN_POPULATION, NN_BN_RUNNING } nn_bn_stats;

typedef struct nn_augment {
	float rotate_degrees;  /* uniform in [-d, d] */
	float translate_pixels;/* uniform in [-p, p] each axis */
	float scale_min, scale_max; /* 0,0 = off */
	int flip_horizontal, flip_vertical; /* each with probability 1/2 */
	int crop_padding;      /* zero-pad by p, crop back at a random offset */
	float brightness;      /* add uniform [-b, b] times the image's value range (max - min) */
	float contrast;        /* scale around the image mean by 1 + uniform [-c, c] */
	float noise_std;       /* Gaussian noise on standardised inputs; any data set */
} nn_augment;

/* 1 when any image augmentation (everything but noise_std) is on. */
int nn_augment_has_image(const nn_augment *a);

/*
 * Applies the image augmentations to one image (w x h x c, channel-last) from
 * src into dst (distinct buffers), drawing from rng. Exposed for tests.
 */
void nn_augment_image(const nn_augment *a, const float *src, float *dst, int w, int h, int c,
                      nn_rng *rng);

typedef struct nn_train_config {
	int epochs;
	int batch_size;
	int shuffle;
	uint64_t seed;
	float val_fraction;     /* used when no validation set is given; 0 = none */
	nn_optimizer opt;
	nn_schedule sched;
	float l2;               /* (lambda/2) sum ||W||^2 over dense weights: g += lambda W */
	int standardize;
	/* Optional, borrowed: per input, 1 when standardisation leaves it alone
	 * (mean 0, std 1: one-hot and missing-indicator inputs). */
	const uint8_t *std_skip;
	nn_bn_stats bn_stats;
	struct { int enabled; int patience; float min_delta; int restore_best; } early;
	struct { nn_avg_type type; int start_epoch; float decay; } avg;
	nn_augment aug;
	struct { int enabled; int64_t max_nonzero; int start_epoch; float bound; } sparsity;
	float clip_grad_norm;   /* 0 = off */
	int log_every_steps;    /* step callback period (default 10) */
	int checkpoint_every_epochs; /* 0 = never */
	/* 1 (default): training steps may compute dense layers whose input is
	 * mostly zeros (image bytes, a ReLU's output) with sparse kernels on
	 * CPUs with AVX-512; 0: every product through cblas_sgemm */
	int sparse_kernels;
	/* data parallelism (API.md `shards`, `replicas`): each batch is cut into
	 * `shards` contiguous slices whose gradient sums are added in one fixed
	 * order, so the weights depend on shards only (1 = one pass over the
	 * whole batch, the engine before shards). `replicas` (dividing shards)
	 * is how many carriers share the work: par. */
	int shards;
	int replicas;
	/* the replicas that carry a sharded step (nn_parallel, below); NULL:
	 * the calling thread runs every task. Not part of the job's identity. */
	const struct nn_parallel *par;
	/* > 0: train on this many rows of the training split only, drawn with
	 * the seed (nested: with the same seed and split, a larger count holds
	 * the rows of a smaller one); more than the split holds is NN_EINVAL */
	int64_t rows;
	/* > 0: at the start of this epoch (before its first step) the run saves
	 * a checkpoint and returns NN_ESTOPPED, as NN_STOP_CHECKPOINT would;
	 * resuming from it with a later stop (or none) continues bit for bit.
	 * Not part of the checkpoint's identity. */
	int stop_at_epoch;
} nn_train_config;

/* Defaults of API.md (sgd lr 0.01, 10 epochs, batch 32, shuffle, ...). */
nn_train_config nn_train_config_default(void);
/* Fills optimizer defaults for its type (momentum 0.9, betas, eps, rho, ...). */
nn_optimizer nn_optimizer_default(nn_opt_type t);
/* Checks ranges; the message names the field by its JSON path ("optimizer.lr"). */
nn_status nn_train_config_check(const nn_train_config *c, char *err, size_t errlen);

typedef struct nn_step_record {
	int64_t step;          /* 1-based, global over the run */
	int epoch;             /* 0-based */
	float loss;            /* the batch's data loss */
	float lr;
} nn_step_record;

typedef struct nn_epoch_record {
	int epoch;             /* 0-based */
	float train_loss;      /* mean data loss over the epoch's batches */
	float val_loss;        /* NAN when there is no validation set */
	float val_accuracy;    /* NAN for regression or without validation */
	float lr;
	double seconds;
	double samples_per_second;
	int n_grad_norms;      /* one per layer with parameters */
	const char *const *grad_norm_names; /* layer paths */
	const float *grad_norms; /* L2 norm of that layer's gradient, mean over the epoch's steps */
	int64_t step;          /* the global step count at the epoch's end (its last step) */
} nn_epoch_record;

/*
 * The data-parallel carrier: the engine cuts a sharded step into phases,
 * each a set of tasks that may run at once (one per shard, or one per range
 * of parameters); the caller runs them on its replicas (threads, MPI
 * ranks). Every task's numbers are fixed by its index alone, so where it
 * runs changes nothing. Task i belongs to replica i * replicas / n (its
 * home); replicas that share memory may run a task away from home when its
 * home is late (server/replicas.c), so tasks of one replica may run at once.
 */
typedef struct nn_tasks {
	void (*fn)(void *arg, int i);
	void *arg;
	int n;
	/* What task i wrote that later phases read, wherever they run: region
	 * k = 0, 1, ... of it (a pointer into the engine's copy of task i's
	 * state, *len bytes), NULL past the last. The regions' sizes depend on
	 * i and the phase only, never on where the task ran. A carrier whose
	 * replicas share memory (threads) ignores it. */
	void *(*out)(void *arg, int i, int k, size_t *len);
} nn_tasks;

typedef struct nn_parallel {
	int replicas;
	void *ctx;
	/* runs fn(arg, i) for every i in [0, n); returns when all are done */
	void (*run)(void *ctx, const nn_tasks *t);
	/* 0: the replicas share this process's memory (threads). 1: each
	 * replica is a process of its own (an MPI rank) running the same
	 * nn_train on the same inputs: run() then runs this replica's tasks
	 * and copies every task's out() regions into every replica's copy
	 * (e.g. an allgather); the engine runs what follows the shards' passes
	 * (the ordered fold of their gradients, the update) in every replica,
	 * so each holds the whole training state, bit for bit the same. */
	int distributed;
} nn_parallel;

/* What the caller answers from should_stop. */
enum { NN_GO_ON = 0, NN_STOP_CANCEL = 1, NN_STOP_CHECKPOINT = 2 };

typedef struct nn_callbacks {
	void *ctx;
	/* every log_every_steps steps; may be NULL */
	void (*on_step)(void *ctx, const nn_step_record *r);
	/* at each epoch end; may be NULL */
	void (*on_epoch)(void *ctx, const nn_epoch_record *r);
	/* asked before every step; NULL = never stop. NN_STOP_CHECKPOINT saves a
	 * checkpoint (through on_checkpoint) at the current step, then returns NN_ESTOPPED. */
	int (*should_stop)(void *ctx);
	/* a complete, restorable training state; the buffer lives only during the
	 * call. Return 0, or non-zero to fail training with NN_EINVAL. May be NULL. */
	int (*on_checkpoint)(void *ctx, const void *buf, size_t len, int epoch, int64_t step);
} nn_callbacks;

typedef struct nn_train_result {
	int epochs_run;
	int64_t steps;
	int stopped_early;
	int best_epoch;        /* -1 without validation */
	float best_val_loss;
	nn_epoch_record last;  /* the final epoch's record (pointers not valid after return) */
} nn_train_result;

/*
 * Trains m in place on `train`, validating on `val` (or on a cfg->val_fraction
 * split of train when val is NULL). When `resume` is not NULL it must be a
 * checkpoint produced by an earlier run of the same model, data and config:
 * training continues from it and reaches the same weights bit for bit.
 * On success m holds the weights to publish (averaged, best-restored, with
 * batch-norm statistics and standardisation set as configured).
 * On NN_EDIVERGED, NN_ESTOPPED and errors m holds whatever it reached.
 */
/*
 * The split nn_train makes of rows training rows with cfg's seed and
 * val_fraction (has_val: a separate validation set, so no split): idx[0..
 * *n_train) the training rows, then the validating ones, each ascending.
 * idx holds rows entries. NN_EINVAL when no training row is left.
 */
nn_status nn_train_split(int64_t rows, int has_val, const nn_train_config *cfg, int64_t *idx,
                         int64_t *n_train);

nn_status nn_train(nn_model *m, const nn_data *train, const nn_data *val,
                   const nn_train_config *cfg, const nn_callbacks *cb,
                   const void *resume, size_t resume_len,
                   nn_train_result *res, char *err, size_t errlen);

/* Inference-mode data loss and accuracy (NAN for regression) of m on d. */
nn_status nn_evaluate(const nn_model *m, const nn_data *d, float *loss, float *accuracy);

/* ---------------------------------------------------------------- files */

/*
 * Model files: "NNDMODEL", format version, little-endian fields, the spec,
 * parameters, state and standardisation, and a CRC-32 of everything before it.
 * nn_model_save allocates *buf (free with free()).
 */
nn_status nn_model_save(const nn_model *m, void **buf, size_t *len);
nn_status nn_model_load(const void *buf, size_t len, nn_model **out, char *err, size_t errlen);

/* CRC-32 (IEEE), exposed for the store and tests. */
uint32_t nn_crc32(uint32_t crc, const void *buf, size_t len);

/* ---------------------------------------------------------------- generated data */

/*
 * Data sets from the seed's function classes (generate.c states the exact
 * construction): Y = f*(X) + noise_std * N(0,1), X uniform on [0,1]^inputs.
 * f* depends only on function_seed and the class's fields; X only on
 * sample_seed, inputs and rows; noise_std only scales the noise.
 */
typedef enum {
	NN_GEN_LINEAR, NN_GEN_ADDITIVE, NN_GEN_TENSOR, NN_GEN_COMPOSITION, NN_GEN_TEACHER
} nn_gen_function;

typedef struct nn_gen_spec {
	nn_gen_function function;
	int inputs;
	int64_t rows;
	double smoothness;     /* alpha: component coefficients decay like k^-(alpha+1/2) */
	double noise_std;
	uint64_t function_seed, sample_seed;
	int terms;             /* tensor_product (default 3) */
	int depth;             /* composition q (default 2), teacher layers (default 3) */
	int arity;             /* composition (default 2) */
	int width;             /* teacher (default 32) */
	int64_t nonzero;       /* teacher (default 200) */
} nn_gen_spec;

/* The defaults of API.md for function f (inputs 10, rows 1000, alpha 2,
 * noise 0.1, seeds 1 and 2). */
nn_gen_spec nn_gen_default(nn_gen_function f);
/* Checks ranges; the message names the field ("generator.arity"). */
nn_status nn_gen_check(const nn_gen_spec *s, char *err, size_t errlen);
/* The seed's rate exponent of the excess risk in n (*known = 0 for teacher). */
double nn_gen_rate_exponent(const nn_gen_spec *s, int *known);

/* f* itself, for evaluating at any point (not thread-safe: it has scratch). */
typedef struct nn_gen_fn nn_gen_fn;
nn_gen_fn *nn_gen_fn_create(const nn_gen_spec *s, char *err, size_t errlen);
double nn_gen_fn_eval(nn_gen_fn *f, const float *x);
void nn_gen_fn_free(nn_gen_fn *f);

/* Fills x (rows x inputs) and y (rows), and fstar (rows, may be NULL) with
 * f*(x) without noise. */
nn_status nn_generate(const nn_gen_spec *s, float *x, float *y, float *fstar, char *err,
                      size_t errlen);

/* ---------------------------------------------------------------- statistics */

/* The p-quantile of Student's t with df degrees of freedom (NAN when out of
 * range): nn_t_quantile(0.975, 1) = 12.7062... */
double nn_t_quantile(double p, double df);

typedef struct nn_slope_fit {
	double slope, intercept;
	double lo, hi;         /* 95% interval (NAN with fewer than 3 points) */
	int points;
} nn_slope_fit;

/* Ordinary least squares of log(values) on log(rows) over all n points,
 * with a 95% interval from Student's t with n - 2 degrees of freedom.
 * NN_EINVAL (message says why) when a value is <= 0, n < 2 or all rows are
 * equal. */
nn_status nn_loglog_fit(const double *rows, const double *values, int n, nn_slope_fit *out,
                        char *err, size_t errlen);

/* ---------------------------------------------------------------- BLAS */

/* The OpenBLAS core in use ("Prescott", "SkylakeX", ...) and thread count. */
const char *nn_blas_core(void);
/* What fixes the floats a training step computes here, as one line of text
 * into buf (always NUL-terminated): OpenBLAS's build and core, and whether
 * the AVX-512 sparse kernels run. Processes whose lines are equal compute
 * the same bits from the same inputs. */
void nn_kernel_ident(char *buf, size_t len);
int nn_blas_threads(void);
void nn_blas_set_threads(int n);

/*
 * Call first thing in main(). When OPENBLAS_CORETYPE is unset, OpenBLAS picked
 * a generic core, and the CPU has AVX-512 (or AVX2), runs a self-test of the
 * faster kernel in a child process and, if its sgemm is correct, re-executes
 * the program (execv /proc/self/exe) with OPENBLAS_CORETYPE set. Returns only
 * when no re-exec happened. A program must call nn_blas_selftest_main() when
 * NND_BLAS_SELFTEST is set in its environment (nn_blas_autoselect does this).
 */
void nn_blas_autoselect(int argc, char **argv);

/* The self-test run in that child: an sgemm of awkward shapes against a
 * naive product. Returns 0 when it matches (the child's exit status). */
int nn_blas_selftest_main(void);

#ifdef __cplusplus
}
#endif
#endif
