/* SPDX-License-Identifier: Apache-2.0 */
/* PLACEHOLDER: being written */
typedef int lurk_placeholder_proto;
